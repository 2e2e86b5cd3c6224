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

A batch whose delivery fails with a retriable error (a leader change such as
NotLeaderForPartition, a request timeout, NodeNotReady; aiokafka gives up on
those once the batch is `request_timeout_ms` old, queueing included) is sent
again, with backoff, until it is delivered or `give_up_s` has passed: the
future the caller awaits is that of the last try. A resent batch may arrive
after a later batch of its partition, and a batch that failed after all may
have arrived once: at-least-once, with deterministic ids (docs/RELIABILITY.md).
Failures are logged at most once per `LOG_EVERY_S` per message template
(stream/log_limit.py, on this module's logger).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Iterable, Optional

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from stream.kafka.security import PLAINTEXT, KafkaSecurity
from stream.log_limit import RateLimit
from stream.memo import Memo

log = logging.getLogger(__name__)
LOG_EVERY_S = 10.0
log.addFilter(RateLimit(LOG_EVERY_S))  # a broker outage fails every batch

# (topic, key, value, partition or None, headers or None)
Message = tuple[str, Optional[bytes], Optional[bytes], Optional[int], Optional[list]]


RETRY_BASE_S, RETRY_MAX_S = 0.1, 5.0


def retriable(exc: BaseException) -> bool:
    """A delivery error worth another try: the broker may answer it differently soon."""
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


class BatchSender:
    def __init__(self, bootstrap: str, linger_s: float, give_up_s: float = 120.0,
                 security: KafkaSecurity = PLAINTEXT):
        self.bootstrap, self.linger_s, self.give_up_s = bootstrap, linger_s, give_up_s
        self.security = security
        self.retries = 0  # batches sent again after a retriable failure
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
                                             max_request_size=8 << 20, **self.security.aiokafka())
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
            for batch, chunk in self._batches(records):
                future = await self.producer.send_batch(batch, topic, partition=partition)
                futures.append(asyncio.ensure_future(self._delivered(future, chunk, topic, partition)))
        return futures

    def _batches(self, records: list) -> list[tuple]:
        """The records as record batches, each with the records it holds (to send again)."""
        out, batch, chunk = [], self.producer.create_batch(), []
        for record in records:
            key, value, headers = record
            if batch.append(timestamp=None, key=key, value=value, headers=headers or []) is None:
                out.append((batch, chunk))
                batch, chunk = self.producer.create_batch(), []
                batch.append(timestamp=None, key=key, value=value, headers=headers or [])
            chunk.append(record)
        out.append((batch, chunk))
        return out

    async def _resubmit(self, records: list, topic: str, partition: int) -> asyncio.Future:
        """Records that filled one batch before, in one batch again."""
        [(batch, _)] = self._batches(records)
        return await self.producer.send_batch(batch, topic, partition=partition)

    async def _delivered(self, future: asyncio.Future, records: list, topic: str, partition: int):
        """Done once the records are delivered, after as many tries as retriable failures
        need (or failed with the last error)."""
        started, backoff = time.monotonic(), RETRY_BASE_S
        while True:
            try:
                return await future
            except Exception as exc:
                if not retriable(exc) or time.monotonic() - started + backoff > self.give_up_s or self.closed:
                    log.error("%d records to %s[%d] not delivered: %r", len(records), topic, partition, exc)
                    raise
                log.warning("%d records to %s[%d] not delivered yet (%r); sending again with backoff",
                            len(records), topic, partition, exc)
            await asyncio.sleep(backoff)
            backoff = min(RETRY_MAX_S, backoff * 2)
            self.retries += 1
            future = await self._resubmit(records, topic, partition)
