"""Reading given offset ranges of a topic's partitions directly, past Faust.

The input cursor (stream/processing/input_cursor.py) finds the records that
Faust skipped or stopped handing over; this reads them with a plain aiokafka
consumer: no group, no commits.
"""
from __future__ import annotations

import asyncio
import time
from typing import Optional

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.kafka.security import PLAINTEXT, KafkaSecurity


class Refetcher:
    """Reads given offset ranges of one topic's partitions: no group, no commits."""

    def __init__(self, bootstrap: str, topic: str, fetch_max_wait_ms: int = 20,
                 security: KafkaSecurity = PLAINTEXT):
        self.bootstrap, self.topic, self.fetch_max_wait_ms = bootstrap, topic, fetch_max_wait_ms
        self.security = security
        self._consumer: Optional[AIOKafkaConsumer] = None

    async def start(self) -> None:
        """In the loop that will use it (the first read starts it too)."""
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                auto_offset_reset="earliest", fetch_max_wait_ms=self.fetch_max_wait_ms,
                max_partition_fetch_bytes=8 << 20, **self.security.aiokafka())
            await consumer.start()
            self._consumer = consumer

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def resume_offset(self, partition: int, stored: Optional[int], seen: Optional[int] = None) -> int:
        """Where applying a newly owned partition resumes: the stored offset; the
        partition's first offset when none is stored or when the stored one lies
        beyond the partition's end (the topic was recreated). `seen`: the first
        offset that arrived, if any (at or above `stored` proves it in range)."""
        tp = TopicPartition(self.topic, partition)
        await self.start()
        if stored is None:
            return (await self._consumer.beginning_offsets([tp]))[tp]
        if seen is not None and seen >= stored:
            return stored
        # Past the end: the broker's high watermark says so (or it answers out of
        # range and the consumer resets to the earliest, with lower offsets).
        records = await self._read(tp, stored, None, timeout_s=2.0, limit=1)
        highwater = self._consumer.highwater(tp)
        if (records and records[0].offset < stored) or (highwater is not None and stored > highwater):
            return (await self._consumer.beginning_offsets([tp]))[tp]
        return stored

    async def fetch(self, partition: int, start: int, stop: Optional[int] = None,
                    limit: int = 50_000, timeout_s: float = 30.0) -> list:
        """Records with start <= offset < stop (stop None: up to what the partition
        holds now), at most `limit`."""
        tp = TopicPartition(self.topic, partition)
        await self.start()
        out = await self._read(tp, start, stop, timeout_s=timeout_s, limit=limit)
        if stop is not None and len(out) < limit and (await self._consumer.position(tp)) < stop:
            raise asyncio.TimeoutError(
                f"{self.topic}[{partition}]: offsets {start}..{stop} not read in {timeout_s:.0f} s")
        return [m for m in out if m.offset >= start]

    async def _read(self, tp: TopicPartition, start: int, stop: Optional[int], *,
                    timeout_s: float, limit: int) -> list:
        """From `start` until `stop`, `limit` records, the partition's end (stop None)
        or the timeout."""
        c = self._consumer
        c.assign([tp])
        c.seek(tp, start)
        out: list = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(out) < limit:
            got = (await c.getmany(tp, timeout_ms=100, max_records=limit - len(out))).get(tp, [])
            out += [m for m in got if stop is None or m.offset < stop]
            position = await c.position(tp)
            if stop is not None and position >= stop:
                break
            highwater = c.highwater(tp)
            if stop is None and not got and highwater is not None and position >= highwater:
                break
        return out[:limit]
