"""Log lines rate limited, whoever writes them, and optionally JSON lines.

A broker outage makes aiokafka
and Faust log every failed request and reconnect (issue 16 measured 200 lines
a second), which fills disks and hides the one line that says what happened.

A filter on the root logger's handlers lets through at most one record per
`every_s` of each (logger, level, message template); the next one let
through says how many like it were left out.

With `MEMBERSTREAM_LOG_FORMAT=json` every line is a JSON object (`JsonLines`):
time, level, logger, message, and the topic, partition and offset (and a few
more named fields) of the record it is about, where the call gives them.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone


class RateLimit(logging.Filter):
    def __init__(self, every_s: float = 10.0, clock=time.monotonic) -> None:
        super().__init__()
        self.every_s, self.clock = every_s, clock
        self._last: dict[tuple, float] = {}
        self._dropped: dict[tuple, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return False
        self._last[key] = now
        dropped = self._dropped.pop(key, 0)
        if dropped:
            record.msg = f"{record.msg} [{dropped} more like this in the last {now - last:.0f} s not logged]"
        if len(self._last) > 10_000:  # templates are few; ids in messages must not grow this
            self._last.clear()
        return True


def limit_root_handlers(every_s: float = 10.0) -> None:
    """The filter on every handler of the root logger that lacks one."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RateLimit) for f in handler.filters):
            handler.addFilter(RateLimit(every_s))


# Fields a log call may add with `extra=` that the JSON lines carry (never member ids:
# logs may leave the shop).
JSON_FIELDS = ("topic", "partition", "offset", "reason", "count", "state", "url")


class JsonLines(logging.Formatter):
    """One JSON object per record, one line each: time (RFC 3339, UTC), level,
    logger, message, the `JSON_FIELDS` the call gave, and an exception, if any,
    as its type and message (no multi-line traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"), "level": record.levelname.lower(), "logger": record.name,
                "message": record.getMessage()}
        for name in JSON_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line["error"] = f"{type(exc).__name__}: {exc}"
        return json.dumps(line, default=str)


def json_root_handlers() -> None:
    """Every handler of the root logger writes JSON lines."""
    formatter = JsonLines()
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
