"""The batcher: `shop.events` -> frames of many records -> the ingest agent.

A plain aiokafka consumer (its own consumer group, no Faust stream
machinery) reads `shop.events`, packs each partition's records into frames
(stream/framing.py) and writes them to the same partition of the internal
frames topic, so the frames stay co-partitioned with the members table.
It commits its input offsets only after the frames are acknowledged, so a
crash re-sends frames rather than losing records (at-least-once; the
agent drops redelivered events by their id hash, DESIGN.md section 8).
Stateless: it runs inside every worker process, in a thread with its own
event loop so that the worker's busy moments do not hold up the hop (in the
worker's loop it added 7 ms at the median at 500 events/s), and the consumer
group spreads the partitions over the workers.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Optional

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from . import framing

log = logging.getLogger(__name__)
COMMIT_INTERVAL_S = 0.2


class Batcher:
    def __init__(self, bootstrap: str, source: str, target: str, group: str, *,
                 frame_records: int = 1000, frame_bytes: int = 512 * 1024,
                 fetch_max_wait_ms: int = 500, session_timeout_ms: int = 10000,
                 heartbeat_interval_ms: int = 1000):
        self.bootstrap, self.source, self.target, self.group = bootstrap, source, target, group
        self.frame_records, self.frame_bytes = frame_records, frame_bytes
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.session_timeout_ms, self.heartbeat_interval_ms = session_timeout_ms, heartbeat_interval_ms
        self.records = 0
        self.frames = 0
        self.joined = threading.Event()  # set once the group gave it its partitions (maybe none)
        self._consumer: Optional[AIOKafkaConsumer] = None
        self._producer: Optional[AIOKafkaProducer] = None
        self._delivered: dict[TopicPartition, int] = {}
        self._committed_at = 0.0
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._task: Optional[asyncio.Task] = None
        self.error: Optional[BaseException] = None

    def start_thread(self) -> None:
        """Run in a thread of its own until `stop_thread`."""
        started = threading.Event()

        def main() -> None:
            async def run() -> None:
                self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
                started.set()
                await self.run()
            try:
                asyncio.run(run())
            except asyncio.CancelledError:
                pass
            except BaseException as exc:  # noqa: BLE001 - reported by the worker
                self.error = exc
                log.exception("batcher stopped")
            finally:
                started.set()

        self._thread = threading.Thread(target=main, name="memberstream-batcher", daemon=True)
        self._thread.start()
        started.wait()

    def stop_thread(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._task.cancel)
            except RuntimeError:
                pass  # the loop already ended
        if self._thread is not None:
            self._thread.join(timeout)

    async def run(self) -> None:
        """Until cancelled."""
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group,
            enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=self.fetch_max_wait_ms, max_partition_fetch_bytes=4 << 20,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", linger_ms=0,
            max_batch_size=max(self.frame_bytes * 2, 1 << 20), max_request_size=8 << 20)
        await self._producer.start()
        await self._consumer.start()
        self._consumer.subscribe([self.source], listener=_Joined(self))
        try:
            while True:
                batch = await self._consumer.getmany(timeout_ms=100, max_records=20000)
                if batch:
                    await self._forward(batch)
                elif self._delivered:
                    await self._commit()
        finally:
            try:
                await asyncio.shield(self._commit())
            except (KafkaError, asyncio.CancelledError) as exc:
                log.warning("batcher final commit: %r", exc)
            await self._close()

    async def _forward(self, batch: dict) -> None:
        sent, commits = [], {}
        for tp, msgs in batch.items():
            records = [(m.offset, m.key, m.value) for m in msgs]
            for run in framing.split(records, self.frame_records, self.frame_bytes):
                sent.append(await self._producer.send(self.target, framing.pack(tp.partition, run),
                                                      partition=tp.partition))
                self.frames += 1
            commits[TopicPartition(tp.topic, tp.partition)] = msgs[-1].offset + 1
            self.records += len(msgs)
        await asyncio.gather(*sent)
        # Delivered: these offsets may be committed. A commit per batch would add a
        # round trip to every hop, so they go at most every COMMIT_INTERVAL_S.
        self._delivered.update(commits)
        if time.monotonic() - self._committed_at >= COMMIT_INTERVAL_S:
            await self._commit()

    async def _commit(self) -> None:
        offsets, self._delivered = self._delivered, {}
        self._committed_at = time.monotonic()
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance took the partitions away: their new owner re-sends
            # from the last commit and the agent drops the duplicates.
            log.warning("batcher commit skipped after rebalance: %s", exc)

    async def _close(self) -> None:
        for part in (self._consumer, self._producer):
            if part is not None:
                try:
                    await part.stop()
                except KafkaError as exc:  # pragma: no cover - shutting down anyway
                    log.warning("batcher stop: %s", exc)


class _Joined(ConsumerRebalanceListener):
    def __init__(self, batcher: Batcher):
        self.batcher = batcher

    async def on_partitions_revoked(self, revoked) -> None:
        self.batcher.joined.clear()

    async def on_partitions_assigned(self, assigned) -> None:
        self.batcher.joined.set()
