"""Event-time helpers: epoch milliseconds <-> RFC 3339."""
from __future__ import annotations

from datetime import datetime, timezone

DAY_MS = 86_400_000


_SECONDS: dict[int, str] = {}


def rfc3339(ms: int) -> str:
    """Epoch milliseconds -> "2010-12-01T08:26:00.000Z" (UTC, millisecond precision).
    The seconds part is cached: outputs come in runs that share their event time."""
    seconds, millis = divmod(int(ms), 1000)
    text = _SECONDS.get(seconds)
    if text is None:
        if len(_SECONDS) >= 65536:
            _SECONDS.clear()
        text = _SECONDS[seconds] = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S")
    return f"{text}.{millis:03d}Z"


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
