"""Input records to the processor, each exactly once, in offset order.

The agent's input cursor (stream/processing/input_cursor.py) says which
record of a partition comes next: an arriving record below it is a
redelivery (dropped before it is parsed), one above it shows a gap, which is
read directly (`refetcher`, stream/kafka/refetcher.py) and applied first.
The caller holds the worker's `applying` lock, so that the agent's batches
and the stall watcher's fills take turns.
"""
from __future__ import annotations

import logging
from typing import Callable, Mapping

from stream.processing import keys
from stream.processing.decisions import Decisions
from stream.processing.input_cursor import InputCursor
from stream.processing.processor import MemberProcessor
from stream.processing.records import Record

log = logging.getLogger(__name__)


class Intake:
    def __init__(self, processor: MemberProcessor, cursor: InputCursor, refetcher,
                 store: Mapping[bytes, bytes], decisions: Decisions,
                 records_of: Callable[[list], list[Record]]) -> None:
        """`refetcher`: `resume_offset(partition, stored, seen)` and `fetch(partition, start,
        stop)` of the input topic; `records_of`: input messages (partition, offset, key,
        value) -> the processor's records (frames unpacked)."""
        self.processor, self.cursor, self.refetcher = processor, cursor, refetcher
        self.store, self.decisions, self.records_of = store, decisions, records_of

    async def resume(self, partition: int, seen=None) -> None:
        """On a partition's first sight: where its cursor stands (stored with the states,
        or the partition's start). `seen`: the offset of the first record that arrived."""
        if not self.cursor.knows(partition):
            self.cursor.set(partition, await self.refetcher.resume_offset(
                partition, keys.stored_offset(self.store, partition), seen))

    async def apply(self, messages, from_faust: bool = True) -> None:
        """Apply input messages in order, each exactly once: those below the cursor are
        redeliveries (dropped), a gap before one is read directly and applied first.
        `from_faust` False: read directly by the stall watcher, not delivered by Faust."""
        totals, cursor = self.processor.totals, self.cursor
        taken = []
        last: dict[int, int] = {}  # partition -> the newest offset taken, applied once prepared
        for m in messages:
            p = m.partition
            if not cursor.knows(p):
                await self.resume(p, m.offset)
            expected = last[p] + 1 if p in last else cursor.next[p]
            gap = m.offset - expected
            if gap < 0:
                if from_faust:
                    totals["redelivered"] += 1
                continue
            if not from_faust:
                totals["gap_filled"] += 1
            if gap > 0:
                missing = await self.refetcher.fetch(p, expected, m.offset)
                log.warning("partition %d: %d input records skipped before offset %d, read directly",
                            p, len(missing), m.offset,
                            extra={"partition": p, "offset": m.offset, "count": len(missing)})
                totals["gap_filled"] += len(missing)
                taken += missing
            taken.append(m)
            last[p] = m.offset
        if taken:
            prepared = self.processor.prepare(self.records_of(taken))
            # Only now: had preparing raised, the cursor would not stand past records that
            # were never applied (the agent's next try reads them again).
            for p, offset in last.items():
                cursor.advance(p, offset)
            await self.decisions.submit(prepared, {p: cursor.next[p] for p in last})
