"""The fault suite's two sizes: `make test` runs every scenario at a reduced size
within the CI budget, `make reliability` (`pytest -m reliability --full-size`) at
the sizes of docs/RELIABILITY.md."""
from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption("--full-size", action="store_true", default=False,
                     help="run the fault scenarios at their full sizes (make reliability)")


@pytest.fixture(scope="session")
def full_size(request) -> bool:
    return bool(request.config.getoption("--full-size"))
