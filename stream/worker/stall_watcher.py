"""The stall watcher: input that Faust left behind, read directly.

Works around an upstream defect of faust-streaming: when a rebalance
interrupts the hand-over of a fetched message, Faust's fetcher abandons the
message yet moves its read offset past it, so the stream goes on after
records it never delivered (faust-streaming/faust#527, robinhood/faust#604;
docs/DESIGN.md section 8). Faust also sometimes stops handing over one
partition's records for seconds with no rebalance. A skipped record that was
its partition's newest leaves no later record to show the gap to the input
cursor, so this task reads an owned partition directly once its cursor stood
still and either the agent got nothing for as long (Faust's queue is empty
then) or Faust has not even handed the partition's next record to the
stream (its fetch is behind, not its queue); any partition after
PARTITION_IDLE_S. A partition found left behind is then read directly every
RESCUE_CHECK_S until Faust has handed over the records read. Faust's delay
(its fetch behind) is not a loss: it is logged at INFO, and not acted on when
Faust handed the partition's next record over while the watcher read it, as
happens at the start of a catch-up, when Faust's first fetches bring some
partitions seconds before the others.

Remove this module, and its task in stream/worker/agents.py, once Faust
neither skips records at a rebalance nor stalls a partition:
`tests/integration/test_input_cursor.py` and `python -m bench.rebalance_check`
show whether it still does.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Optional

import faust
from aiokafka.errors import KafkaError
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from stream.kafka.refetcher import Refetcher
from stream.worker.worker import Worker

log = logging.getLogger(__name__)

STALL_CHECK_S = 1.0
RESCUE_CHECK_S = 0.02
AGENT_IDLE_S = 2.0
PARTITION_IDLE_S = 30.0


class StallWatcher:
    def __init__(self, app: faust.App, worker: Worker) -> None:
        self.app, self.worker = app, worker
        self.fetcher = Refetcher(worker.settings.bootstrap_servers, worker.input_topic,
                                 worker.broker.fetch_max_wait_ms, worker.settings.kafka_security)
        self.rescuing: dict[int, int] = {}  # partition -> the offset Faust must hand over to end it

    def owned(self) -> set[int]:
        """Partitions of the agent's input this worker owns."""
        topic = self.worker.input_topic
        try:
            assignment = self.app.consumer.assignment()
        except ConsumerNotStarted:  # start-up: /health is served before the consumer's thread runs
            return set()
        return {tp.partition for tp in assignment if tp.topic == topic}

    def _last_handed(self, partition: int) -> Optional[int]:
        """Offset of the partition's last record Faust handed to the stream, None if
        unknown. Reads the consumer's `_read_offset` (not public API)."""
        read = getattr(self.app.consumer, "_read_offset", None)
        return None if read is None else read.get(TP(self.worker.input_topic, partition))

    def _handed(self, partition: int, offset: int) -> bool:
        """Faust has handed the partition's record at `offset` (or a later one) to the stream."""
        last = self._last_handed(partition)
        return last is not None and last >= offset

    def _behind(self, partition: int) -> bool:
        """Faust has not handed the partition's next record to the stream yet (unknown
        counts as behind)."""
        last = self._last_handed(partition)
        return last is None or last < self.worker.cursor.next[partition]

    async def run(self) -> None:
        w = self.worker
        await w.started.wait()
        try:
            await self._watch(4 * w.batch)
        finally:
            await self.fetcher.stop()
            async with w.applying:  # the agent's refetcher is only used under the lock
                await w.refetcher.stop()

    async def _watch(self, limit: int) -> None:
        app, w, rescuing = self.app, self.worker, self.rescuing
        cursor = w.cursor
        while True:
            await asyncio.sleep(RESCUE_CHECK_S if rescuing else STALL_CHECK_S)
            if app.rebalancing or not app.tables.recovery.completed.is_set():
                continue
            owned = self.owned()
            for p in [p for p, until in rescuing.items() if p not in owned or self._handed(p, until)]:
                del rescuing[p]  # Faust delivers it again
            # Before Faust delivered anything (start-up) only the long wait applies.
            agent_idle = 0 < w.agent_moved_at <= time.monotonic() - AGENT_IDLE_S
            for p in sorted(owned):
                if not cursor.knows(p):
                    async with w.applying:
                        await w.intake.resume(p)  # first sight: give Faust time to deliver
                    continue
                idle = cursor.idle_s(p)
                # Skipped: Faust's queue is empty (the agent idle) or the partition quiet for
                # long. Delayed: Faust hands over other partitions but not this one's next.
                skipped = idle >= PARTITION_IDLE_S or (idle >= AGENT_IDLE_S and agent_idle)
                delayed = idle >= AGENT_IDLE_S and w.agent_moved_at > 0 and self._behind(p)
                if p not in rescuing and not skipped and not delayed:
                    continue
                # Read outside the lock (the agent goes on meanwhile; what it applied first
                # is dropped by the intake), with the watcher's own consumer.
                start = cursor.next[p]
                try:
                    missing = await self.fetcher.fetch(p, start, None, limit=limit)
                except KafkaError as exc:  # the next round tries again
                    log.warning("partition %d: looking for records left behind: %r", p, exc)
                    continue
                async with w.applying:
                    if p not in self.owned() or app.rebalancing or not cursor.knows(p):
                        continue  # revoked meanwhile
                    if not missing:
                        if p not in rescuing:
                            cursor.set(p, cursor.next[p])  # checked: nothing left behind
                        continue
                    if p not in rescuing:
                        if not skipped and self._handed(p, start):
                            continue  # handed over while we read (a catch-up's uneven start)
                        self._rescue(p, missing, start, skipped, idle)
                    await w.intake.apply(missing, from_faust=False)

    def _rescue(self, partition: int, missing: list, start: int, skipped: bool, idle: float) -> None:
        """Read the partition directly from now on until Faust hands over what was read."""
        until = self.rescuing[partition] = missing[-1].offset
        if skipped:
            log.warning("partition %d: %d input records from offset %d left behind, read directly until "
                        "Faust hands over offset %d", partition, len(missing), start, until)
        else:  # Faust's delay, not a loss: worked around, counted in memberstream_gap_filled_total
            log.info("partition %d: Faust has not handed over offset %d for %.1f s; %d records read "
                     "directly until it hands over offset %d", partition, start, idle, len(missing), until)
