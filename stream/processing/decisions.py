"""Pass 2 of the agent's batches, in order, while the agent prepares the next ones.

A batch whose inactivity checkpoints need scores would otherwise hold the agent
for a Triton round trip (seen: 40 % of the agent's time over the bench log).
Up to `in_flight` batches wait for their checkpoint scores at once; each is
decided after the one before it, then published with the input offsets it
reaches. A batch without checkpoints, with none in flight, is decided at once.
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Optional

from stream.processing.processor import MemberProcessor, Prepared
from stream.processing.records import BatchResult
from stream.processing.waits import Waits


class Decisions:
    def __init__(self, processor: MemberProcessor, publish: Callable[[BatchResult], Awaitable[None]],
                 in_flight: int, waits: Waits) -> None:
        self.processor, self.publish, self.waits = processor, publish, waits
        self.slots = asyncio.Semaphore(in_flight)
        self.last: Optional[asyncio.Task] = None
        self.waiting = 0  # batches submitted, not yet published

    async def submit(self, prepared: Prepared, inputs: dict[int, int]) -> None:
        """Decide and publish `prepared` after every batch submitted before it; `inputs`:
        the next input offset of each partition once it is published."""
        if self.last is not None and self.last.done():
            self.last.result()  # a failed decision fails the agent
            self.last = None
        t = time.monotonic()
        if self.last is None and not prepared.rows:
            await self._publish(prepared, None, inputs)
            self.waits.since("publish", t)
            return
        await self.slots.acquire()
        self.waits.since("in_flight", t)
        self.waiting += 1
        scoring = asyncio.ensure_future(self.processor.score_checkpoints(prepared))
        self.last = asyncio.create_task(self._decide_after(self.last, prepared, scoring, inputs))

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
