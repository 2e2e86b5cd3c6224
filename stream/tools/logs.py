"""Recorded event logs: JSON lines, one input event (docs/DESIGN.md section 3)
per line, as `replay` publishes them and the demo and the bench build them."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import orjson


class LogError(Exception):
    """A log that cannot be read."""


def read_log(path: Path) -> list[bytes]:
    """The log's non-blank lines, without their line ends."""
    if not path.is_file():
        raise LogError(f"log file not found: {path}")
    with open(path, "rb") as fh:
        return [line.rstrip(b"\r\n") for line in fh if line.strip()]


def write_log(path: Path, events: Iterable[dict]) -> int:
    """Write events as JSON lines (the folder made if needed); how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "wb") as fh:
        for event in events:
            fh.write(orjson.dumps(event) + b"\n")
            n += 1
    return n
