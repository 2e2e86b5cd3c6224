"""The package rules of docs/DESIGN.md section 1, held by a test: imports point
up the list of packages, Faust is known only to the worker, the embedded broker
only to kafka/, and no Python file is over 400 lines."""
import ast

import pytest

from tests.fixtures.paths import ROOT

ORDER = ["contract", "domain", "scoring", "processing", "kafka", "worker", "tools"]
STREAM = ROOT / "stream"


def _imports(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _package(path) -> str:
    return path.relative_to(STREAM).parts[0]


@pytest.mark.parametrize("package", ORDER)
def test_a_package_imports_only_those_above_it(package):
    for path in (STREAM / package).rglob("*.py"):
        below = {m.split(".")[1] for m in _imports(path) if m.startswith("stream.") and len(m.split(".")) > 2}
        assert not {p for p in below & set(ORDER) if ORDER.index(p) > ORDER.index(package)}, path


def test_faust_and_the_embedded_broker_stay_in_their_packages():
    for path in STREAM.rglob("*.py"):
        rel = path.relative_to(STREAM).as_posix()
        if any(m == "faust" or m.startswith("faust.") for m in _imports(path)):
            assert rel.startswith("worker/") or rel in ("kafka/tansu.py", "cli.py"), rel
        if "embedded_broker" in path.read_text():
            # Set by the launchers of the embedded stack; read only in kafka/.
            assert rel.startswith("kafka/") or rel in ("settings.py", "tools/stack.py", "tools/launcher/worker.py"), rel
        assert "models" not in {m.split(".")[0] for m in _imports(path)} or rel == "cli.py", rel


def test_no_python_file_is_over_400_lines():
    for folder in ("stream", "models", "bench", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            assert len(path.read_text().splitlines()) <= 400, path
