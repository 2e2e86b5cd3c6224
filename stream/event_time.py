"""Event-time helpers: epoch milliseconds <-> RFC 3339."""
from __future__ import annotations

from datetime import datetime, timezone

from .memo import Memo

DAY_MS = 86_400_000


# Outputs come in runs that share their event time: the seconds part is formatted once.
_SECONDS: Memo[int, str] = Memo(
    lambda seconds: datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), 65536)


def rfc3339(ms: int) -> str:
    """Epoch milliseconds -> "2010-12-01T08:26:00.000Z" (UTC, millisecond precision)."""
    seconds, millis = divmod(int(ms), 1000)
    return f"{_SECONDS[seconds]}.{millis:03d}Z"


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
