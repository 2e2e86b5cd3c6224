"""Plain-text result tables and their JSON twin."""
from __future__ import annotations

import json
import math
from pathlib import Path


def fmt(v) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def table(title: str, rows: list[dict], columns: list[str]) -> str:
    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(  # noqa: E731
        v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(vals, widths)))
    return "\n".join([title, line(columns), line(["-" * w for w in widths]),
                      *(line(row) for row in cells)])


def write_json(path: Path | None, payload: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = json.loads(json.dumps(payload, default=str).replace("NaN", "null"))
    path.write_text(json.dumps(clean, indent=2) + "\n")
