"""Event-time helpers: epoch milliseconds <-> RFC 3339."""
from __future__ import annotations

from datetime import datetime, timezone

DAY_MS = 86_400_000


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
