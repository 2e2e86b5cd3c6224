"""Event-time helpers: epoch milliseconds <-> RFC 3339."""
from __future__ import annotations

from datetime import datetime, timezone

from stream.memo import Memo

DAY_MS = 86_400_000


# The date part once per day; the time of day by arithmetic (datetime's formatting was
# 2 % of the worker: most outputs of a catch-up fall in seconds of their own).
_DAYS: Memo[int, str] = Memo(
    lambda days: datetime.fromtimestamp(days * 86400, tz=timezone.utc).strftime("%Y-%m-%d"), 4096)


def _seconds_text(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{_DAYS[days]}T{hours:02d}:{minutes:02d}:{secs:02d}"


# Outputs come in runs that share their event time: the seconds part is formatted once.
_SECONDS: Memo[int, str] = Memo(_seconds_text, 65536)


def rfc3339(ms: int) -> str:
    """Epoch milliseconds -> "2010-12-01T08:26:00.000Z" (UTC, millisecond precision)."""
    seconds, millis = divmod(int(ms), 1000)
    return f"{_SECONDS[seconds]}.{millis:03d}Z"


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
