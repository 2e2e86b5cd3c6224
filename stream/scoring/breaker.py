"""A circuit breaker in front of the scorer: how the worker lives through a
Triton outage without hammering it, flooding its log, or hiding it.

closed     requests go out. A failure opens the circuit.
open       no request goes out until the backoff ends (`base_s`, doubled
           after every failed probe, at most `max_s`); then
half-open  one request, the probe, goes out: its success closes the
           circuit, its failure opens it again with the longer backoff.

Callers that must have a score (a batch's inactivity checkpoints) wait in
`until_retry` and try again; callers that can do without (recommendations)
fall back meanwhile. There is one log line per opening and one per closing,
never one per failure: at 300 events/s an outage would otherwise write
hundreds of lines a second.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Optional

log = logging.getLogger(__name__)

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
# The value of the circuit's gauge in /metrics, per state.
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class Breaker:
    def __init__(self, what: str, base_s: float = 0.5, max_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.base_s, self.max_s, self.clock = what, base_s, max_s, clock
        self.state = CLOSED
        self.reason: Optional[str] = None  # the newest failure while not closed
        self.failures = 0      # consecutive failed attempts
        self.opened_at = 0.0   # clock time the circuit last left `closed`
        self.retry_at = 0.0    # while open: when the next probe may go
        self.openings = 0      # times the circuit left `closed` (a counter in /metrics)
        self._changed = asyncio.Event()

    def _transition(self, state: str) -> None:
        self.state = state
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def allow(self) -> bool:
        """May a request go out now? Once the backoff has ended, the first caller to ask
        is the probe (half-open); the others are refused until it is answered."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN and self.clock() >= self.retry_at:
            self._transition(HALF_OPEN)
            return True
        return False

    def succeeded(self) -> None:
        if self.state != CLOSED:
            log.warning("%s: back after %.1f s and %d failed attempts", self.what,
                        self.clock() - self.opened_at, self.failures)
            self.reason = None
            self._transition(CLOSED)
        self.failures = 0

    def failed(self, reason: str) -> None:
        self.failures += 1
        self.reason = reason
        backoff = min(self.max_s, self.base_s * 2 ** min(self.failures - 1, 30))
        self.retry_at = self.clock() + backoff
        if self.state == CLOSED:
            self.opened_at = self.clock()
            self.openings += 1
            log.warning("%s: unavailable (%s); retrying with backoff from %.3g s up to %.3g s",
                        self.what, reason, backoff, self.max_s)
        self._transition(OPEN)

    def abandoned(self) -> None:
        """The probe was cancelled before its answer: the next caller may probe at once."""
        if self.state == HALF_OPEN:
            self.retry_at = self.clock()
            self._transition(OPEN)

    async def until_retry(self) -> None:
        """Return once a request may go out: the circuit closed, or its backoff ended."""
        while True:
            changed = self._changed
            if self.state == CLOSED:
                return
            if self.state == OPEN:
                wait = self.retry_at - self.clock()
                if wait <= 0:
                    return
            else:
                wait = None  # half-open: until the probe is answered
            try:
                await asyncio.wait_for(changed.wait(), wait)
            except asyncio.TimeoutError:
                pass

    def down_for(self) -> float:
        """Seconds since the circuit left `closed` (0 while closed)."""
        return 0.0 if self.state == CLOSED else self.clock() - self.opened_at
