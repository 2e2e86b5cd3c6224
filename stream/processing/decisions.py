"""Pass 2 of the agent's batches, in order, while the agent prepares the next ones.

A batch whose inactivity checkpoints need scores would otherwise hold the agent
for a Triton round trip (seen: 40 % of the agent's time over the bench log).
Up to `in_flight` batches wait for their checkpoint scores at once; each is
decided after the one before it, then published with the input offsets it
reaches. A batch without checkpoints, with none in flight, is decided at once.

A batch whose checkpoint scoring fails is held, not decided without scores:
its scoring is tried again whenever the circuit breaker lets a request out,
so that a Triton outage delays its alerts but neither drops nor changes
them. The batches after it wait behind it (their decisions come after its),
so the agent stops once `in_flight` batches wait; `/health` says so. A hold
ends unscored only after `hold_s` (0: never) or when the partitions are
revoked or the worker stops (`release`): its checkpoints then go back to the
schedule as before (docs/RELIABILITY.md).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Optional

from stream.processing.processor import MemberProcessor
from stream.processing.records import BatchResult, Prepared
from stream.processing.waits import Waits

log = logging.getLogger(__name__)


class Decisions:
    def __init__(self, processor: MemberProcessor, publish: Callable[[BatchResult], Awaitable[None]],
                 in_flight: int, waits: Waits, hold_s: float = 0.0) -> None:
        self.processor, self.publish, self.waits, self.hold_s = processor, publish, waits, hold_s
        self.slots = asyncio.Semaphore(in_flight)
        self.last: Optional[asyncio.Task] = None
        self.waiting = 0  # batches submitted, not yet published
        self.held: dict[int, float] = {}  # id of a held batch -> monotonic time its hold began
        self.released = asyncio.Event()  # set: holds end now (revocation, shutdown)

    def held_for(self) -> float:
        """Seconds the oldest batch held for its checkpoint scores has waited (0: none)."""
        return time.monotonic() - min(self.held.values()) if self.held else 0.0

    def release(self) -> None:
        """End every hold now, and any that would begin, until `resume`."""
        self.released.set()

    def resume(self) -> None:
        self.released.clear()

    async def submit(self, prepared: Prepared, inputs: dict[int, int]) -> None:
        """Decide and publish `prepared` after every batch submitted before it; `inputs`:
        the next input offset of each partition once it is published."""
        if self.last is not None and self.last.done():
            self.last.result()  # a failed decision fails the agent
            self.last = None
        t = time.monotonic()
        if self.last is None and not prepared.rows and not prepared.explain:
            await self._publish(prepared, None, inputs)
            self.waits.since("publish", t)
            return
        await self.slots.acquire()
        self.waits.since("in_flight", t)
        self.waiting += 1
        scoring = asyncio.ensure_future(self._scored(prepared))
        self.last = asyncio.create_task(self._decide_after(self.last, prepared, scoring, inputs))

    async def _scored(self, prepared: Prepared):
        """The batch's checkpoint scores, tried again whenever the breaker allows until
        they come; None once the hold ends unscored."""
        if not prepared.rows:
            if prepared.explain:  # only the factors of alerts to find: tried once
                await self.processor.score_checkpoints(prepared)
            return None
        breaker, began = self.processor.breaker, None
        try:
            while True:
                scores = await self.processor.score_checkpoints(prepared)
                if scores is not None or self.released.is_set():
                    return scores
                if began is None:
                    began = self.held[id(prepared)] = time.monotonic()
                left = None if not self.hold_s else self.hold_s - (time.monotonic() - began)
                if left is not None and left <= 0:
                    log.warning("%d inactivity checkpoints decided at the members' next chance: no "
                                "scores after %.0f s (%s)", len(prepared.rows), self.hold_s, breaker.reason)
                    return None
                retry = asyncio.ensure_future(breaker.until_retry())
                released = asyncio.ensure_future(self.released.wait())
                try:
                    await asyncio.wait((retry, released), timeout=left, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    retry.cancel()
                    released.cancel()
        finally:
            self.held.pop(id(prepared), None)

    async def _decide_after(self, before, prepared: Prepared, scoring, inputs: dict[int, int]) -> None:
        try:
            if before is not None:
                await before
            await self._publish(prepared, await scoring, inputs)
        finally:
            self.waiting -= 1
            self.slots.release()

    async def _publish(self, prepared: Prepared, scores, inputs: dict[int, int]) -> None:
        result = self.processor.decide(prepared, scores)
        result.inputs = inputs
        await self.publish(result)

    async def drained(self) -> None:
        """Every batch submitted so far is decided and published."""
        if self.last is not None:
            await self.last
