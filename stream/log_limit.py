"""Log lines rate limited, whoever writes them: a broker outage makes aiokafka
and Faust log every failed request and reconnect (issue 16 measured 200 lines
a second), which fills disks and hides the one line that says what happened.

A filter on the root logger's handlers lets through at most one record per
`every_s` of each (logger, level, message template); the next one let
through says how many like it were left out.
"""
from __future__ import annotations

import logging
import time


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
