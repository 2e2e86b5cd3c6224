"""Outputs and changelog records sent as one record batch per topic partition.

A `send` per message costs the worker 15-20 µs in aiokafka (metadata wait,
partitioner, accumulator; Faust's producer wraps it once more): about 12 %
of the worker at full speed (bench/PROFILE.md), for messages that come in
hundreds at a time (one agent batch, one scoring request, one changelog
flush). `BatchSender.send` groups them by topic partition, appends each
group to a record batch with aiokafka's batch API and submits every batch
once. Keyed messages without a partition go where aiokafka's default
partitioner (Kafka's murmur2) sends them, so a member's outputs share a
partition as with `send`; in-partition order is the order given.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Iterable, Optional

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from stream.memo import Memo

log = logging.getLogger(__name__)

# (topic, key, value, partition or None, headers or None)
Message = tuple[str, Optional[bytes], Optional[bytes], Optional[int], Optional[list]]


class BatchSender:
    def __init__(self, bootstrap: str, linger_s: float):
        self.bootstrap, self.linger_s = bootstrap, linger_s
        self.producer: Optional[AIOKafkaProducer] = None  # made in `start`, inside the worker's loop
        self.partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        self._of_key: dict[str, Memo] = {}
        self.started = False
        self.closed = False

    async def start(self) -> None:
        if not self.started:
            self.started = True
            self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                             linger_ms=int(self.linger_s * 1000), max_batch_size=1 << 20,
                                             max_request_size=8 << 20)
            await self.producer.start()

    async def stop(self) -> None:
        if self.started and not self.closed:
            self.closed = True
            await self.producer.stop()

    async def _fetch_partitions(self, topic: str) -> list[int]:
        parts = self._partitions[topic] = sorted(await self.producer.partitions_for(topic))
        return parts

    async def _key_memo(self, topic: str) -> Memo:
        """key -> partition on `topic`: murmur2 in Python once per key, not per message (a
        member's outputs come many times; it was 1.5 % of the worker)."""
        parts = self._partitions.get(topic) or await self._fetch_partitions(topic)
        memo = self._of_key[topic] = Memo(lambda key: self.partitioner(key, parts, parts), 1 << 16)
        return memo

    async def send(self, messages: Iterable[Message]) -> list[asyncio.Future]:
        """Queue the messages; one future per record batch, done once it is delivered."""
        if self.closed:
            # Only after the final flush at shutdown: what was not flushed is applied and
            # scored again from the input offsets and pending flags in the changelog.
            log.warning("sender stopped: %d messages not sent", sum(1 for _ in messages))
            return []
        if not self.started:
            await self.start()
        groups: dict[tuple[str, int], list] = {}
        for topic, key, value, partition, headers in messages:
            if partition is None:
                if key is not None:
                    memo = self._of_key.get(topic)
                    if memo is None:
                        memo = await self._key_memo(topic)
                    partition = memo[key]
                else:
                    parts = self._partitions.get(topic) or await self._fetch_partitions(topic)
                    partition = self.partitioner(key, parts, parts)
            groups.setdefault((topic, partition), []).append((key, value, headers))
        futures = []
        for (topic, partition), records in groups.items():
            batch = self.producer.create_batch()
            for key, value, headers in records:
                if batch.append(timestamp=None, key=key, value=value, headers=headers or []) is None:
                    futures.append(await self._send(batch, topic, partition))
                    batch = self.producer.create_batch()
                    batch.append(timestamp=None, key=key, value=value, headers=headers or [])
            futures.append(await self._send(batch, topic, partition))
        return futures

    async def _send(self, batch, topic: str, partition: int) -> asyncio.Future:
        records = batch.record_count()
        future = await self.producer.send_batch(batch, topic, partition=partition)
        future.add_done_callback(lambda f: _log_failure(f, topic, partition, records))
        return future


def _log_failure(future: asyncio.Future, topic: str, partition: int, records: int) -> None:
    """aiokafka's delivery errors do not say where: the log does."""
    if not future.cancelled() and future.exception() is not None:
        log.error("%d records to %s[%d] not delivered: %r", records, topic, partition, future.exception())
