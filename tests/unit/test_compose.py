"""docker-compose.yml is valid for the compose validator, when one is installed."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
COMPOSE = shutil.which("docker-compose")


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose (Debian package) not installed")
def test_compose_file_validates_and_has_the_stack():
    run = lambda *a: subprocess.run([COMPOSE, "-f", str(ROOT / "docker-compose.yml"), *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=60, cwd=ROOT)
    result = run("config", "-q")
    assert result.returncode == 0, result.stderr
    services = run("--profile", "replay", "config", "--services").stdout.split()
    assert sorted(services) == ["kafka", "replay", "triton", "worker"]
    config = run("config").stdout
    assert "capabilities:\n            - gpu" in config and "KAFKA_PROCESS_ROLES: broker,controller" in config
    assert "--model-config-name=gpu" in config  # the GPU it reserves serves configs/gpu.pbtxt
