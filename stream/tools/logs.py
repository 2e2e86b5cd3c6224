"""Recorded event logs: JSON lines, one input event (docs/DESIGN.md section 3)
per line, as `replay` publishes them and the demo and the bench build them."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import orjson


class LogError(Exception):
    """A log that cannot be read."""


def read_log(path: Path, json_objects: bool = False) -> list[bytes]:
    """The log's non-blank lines, without their line ends. With `json_objects`, a
    line that is not a JSON object is a LogError naming the first such line (a
    binary file, or the wrong file, is refused before anything is sent)."""
    if not path.is_file():
        raise LogError(f"log file not found: {path}")
    with open(path, "rb") as fh:
        lines = [(n, line.rstrip(b"\r\n")) for n, line in enumerate(fh, 1) if line.strip()]
    if json_objects:
        for n, line in lines:
            try:
                ok = isinstance(orjson.loads(line), dict)
                why = "not a JSON object"
            except orjson.JSONDecodeError as exc:
                ok, why = False, f"not JSON: {str(exc).split(':', 1)[0]}"
            if not ok:
                raise LogError(f"{path} is not JSON lines: line {n} is {why} ({_excerpt(line)}); "
                               "--as-is sends such lines unchecked, for the worker to dead-letter")
    return [line for _, line in lines]


def _excerpt(line: bytes, width: int = 40) -> str:
    text = repr(line[:width])[2:-1]
    return text + ("..." if len(line) > width else "")


def write_log(path: Path, events: Iterable[dict]) -> int:
    """Write events as JSON lines (the folder made if needed); how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "wb") as fh:
        for event in events:
            fh.write(orjson.dumps(event) + b"\n")
            n += 1
    return n
