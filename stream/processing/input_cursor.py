"""The agent's own input offsets: every record applied once, none skipped.

Faust can skip records it had fetched when a rebalance came: the stream
goes on after them and they are never redelivered (docs/DESIGN.md section 8;
upstream faust-streaming/faust#527, robinhood/faust#604). So, as Kafka
Streams does, the agent keeps the next input offset of each partition it
applies with the member states it produced (`keys.input_key` in the members
table and its changelog) and checks every arriving record against it:

* below it: a redelivery of records already applied: dropped here;
* above it: a gap: the missing records are read with a plain consumer
  (stream/kafka/refetcher.py) and applied first, in offset order
  (stream/processing/intake.py);
* a partition whose cursor has not moved for a while although its topic
  holds more (the skipped records were its newest) is filled the same way.
"""
from __future__ import annotations

import time


class InputCursor:
    """Next expected input offset per partition, and when it last moved."""

    def __init__(self) -> None:
        self.next: dict[int, int] = {}
        self.moved_at: dict[int, float] = {}

    def knows(self, partition: int) -> bool:
        return partition in self.next

    def set(self, partition: int, offset: int) -> None:
        self.next[partition] = offset
        self.moved_at[partition] = time.monotonic()

    def forget(self, partitions) -> None:
        for partition in partitions:
            self.next.pop(partition, None)
            self.moved_at.pop(partition, None)

    def gap(self, partition: int, offset: int) -> int:
        """Records missing before `offset`: 0 if it is the next one, < 0 if already applied."""
        return offset - self.next[partition]

    def advance(self, partition: int, offset: int) -> None:
        """The record at `offset` is applied."""
        self.next[partition] = offset + 1
        self.moved_at[partition] = time.monotonic()

    def idle_s(self, partition: int) -> float:
        return time.monotonic() - self.moved_at[partition]
