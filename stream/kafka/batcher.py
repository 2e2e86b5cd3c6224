"""The batcher: `shop.events` -> frames of many records -> the ingest agent.

A plain aiokafka consumer (its own consumer group, no Faust stream
machinery) reads `shop.events`, packs each partition's records into frames
(stream/kafka/framing.py) and writes them to the same partition of the internal
frames topic, so the frames stay co-partitioned with the members table.
It commits its input offsets only after the frames are acknowledged, so a
crash re-sends frames rather than losing records (at-least-once; the
agent drops redelivered events by their id hash, docs/DESIGN.md section 8).
Stateless: every worker runs one in a child process with its own event loop,
so that the worker's busy moments do not hold up the hop (in the worker's
loop it added 7 ms at the median at 500 events/s) and its work does not take
the worker's interpreter lock; the consumer group spreads the partitions
over the workers.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import time
from typing import Optional

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from stream.log_limit import limit_root_handlers
from stream.kafka import framing
from stream.kafka.security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)
COMMIT_INTERVAL_S = 0.2
LAG_INTERVAL_S = 1.0
LAG_SLOTS = 1024  # partitions whose consumer lag the worker can read; beyond that it is not exported
NO_LAG = -1       # the slot's partition is not this batcher's, or its lag is not known yet


class Batcher:
    """One worker's batcher. `start` runs it in a child process of the worker;
    `records`, `frames`, `joined` and each partition's consumer lag (`lags`) are shared
    with the worker (metrics, /health)."""

    def __init__(self, bootstrap: str, source: str, target: str, group: str, *,
                 frame_records: int = 1000, frame_bytes: int = 512 * 1024,
                 fetch_max_wait_ms: int = 500, session_timeout_ms: int = 10000,
                 heartbeat_interval_ms: int = 1000, uvloop: bool = False, log_level: str = "warning",
                 shared: Optional[tuple] = None, security: KafkaSecurity = PLAINTEXT):
        self.config = dict(bootstrap=bootstrap, source=source, target=target, group=group,
                           frame_records=frame_records, frame_bytes=frame_bytes,
                           fetch_max_wait_ms=fetch_max_wait_ms, session_timeout_ms=session_timeout_ms,
                           heartbeat_interval_ms=heartbeat_interval_ms, security=security)
        self.security = security  # pickled to the child with the config; secrets stay SecretStr
        self.bootstrap, self.source, self.target, self.group = bootstrap, source, target, group
        self.frame_records, self.frame_bytes = frame_records, frame_bytes
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.session_timeout_ms, self.heartbeat_interval_ms = session_timeout_ms, heartbeat_interval_ms
        self.uvloop, self.log_level = uvloop, log_level
        ctx = multiprocessing.get_context("spawn")  # no copy of the worker's loop, threads or Faust
        self._process_factory = ctx.Process
        # Written by the batcher's process only, read by the worker; `joined` is set once
        # the group gave the batcher its partitions (maybe none).
        self._records, self._frames, self.joined, self._lags = shared or (
            ctx.Value("q", 0, lock=False), ctx.Value("q", 0, lock=False), ctx.Event(),
            ctx.Array("q", [NO_LAG] * LAG_SLOTS, lock=False))
        self._consumer: Optional[AIOKafkaConsumer] = None
        self._producer: Optional[AIOKafkaProducer] = None
        self._delivered: dict[TopicPartition, int] = {}
        self._committed_at = 0.0
        self._lag_at = 0.0
        self._process = None
        self._stopping = False

    @property
    def records(self) -> int:
        return self._records.value

    @property
    def frames(self) -> int:
        return self._frames.value

    def lags(self) -> dict[int, int]:
        """partition -> records of `source` not yet framed there (its high watermark as last
        fetched minus the batcher's position), for the partitions the batcher owns."""
        return {partition: lag for partition, lag in enumerate(self._lags) if lag != NO_LAG}

    def start(self) -> None:
        """Run in a child process until `stop`. A process, not a thread of the worker: the
        hop's fetching, framing and sending then use a core of their own instead of the
        worker's interpreter lock (in a thread it took 13-15 % of the worker's samples;
        the pipeline ran 13.0k -> 15.5k events/s in development runs)."""
        self._process = self._process_factory(
            target=_child, name="memberstream-batcher", daemon=True,
            args=(self.config, self.uvloop, self.log_level,
                  (self._records, self._frames, self.joined, self._lags), os.getpid()))
        self._process.start()

    @property
    def error(self) -> Optional[str]:
        """Why the batcher's process ended, if it ended without being stopped."""
        p = self._process
        if p is None or self._stopping or p.exitcode is None:
            return None
        return f"batcher process {p.pid} exited with code {p.exitcode}"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by PID (the batcher commits what was delivered and leaves its group),
        SIGKILL after `timeout`."""
        self._stopping = True
        p = self._process
        if p is None:
            return
        if p.exitcode is None:
            p.terminate()
            p.join(timeout)
            if p.exitcode is None:
                p.kill()
                p.join(5)

    async def run(self) -> None:
        """Until cancelled."""
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group,
            enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=self.fetch_max_wait_ms, max_partition_fetch_bytes=4 << 20,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms, **self.security.aiokafka())
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", linger_ms=0,
            max_batch_size=max(self.frame_bytes * 2, 1 << 20), max_request_size=8 << 20,
            **self.security.aiokafka())
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
                if time.monotonic() - self._lag_at >= LAG_INTERVAL_S:
                    await self._measure_lag()
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
                self._frames.value += 1
            commits[TopicPartition(tp.topic, tp.partition)] = msgs[-1].offset + 1
            self._records.value += len(msgs)
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

    async def _measure_lag(self) -> None:
        self._lag_at = time.monotonic()
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None or tp.partition >= LAG_SLOTS:
                continue
            try:
                position = await self._consumer.position(tp)
            except IllegalStateError:  # revoked meanwhile
                continue
            self._lags[tp.partition] = max(0, high - position)

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
        for tp in revoked:
            if tp.partition < LAG_SLOTS:
                self.batcher._lags[tp.partition] = NO_LAG

    async def on_partitions_assigned(self, assigned) -> None:
        self.batcher.joined.set()


PARENT_CHECK_S = 0.5


def _child(config: dict, use_uvloop: bool, log_level: str, shared: tuple, parent: int) -> None:
    """The batcher's process: run until SIGTERM, or until the worker that started it is
    gone (a SIGKILLed worker leaves no batcher behind)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when to stop
    logging.basicConfig(level=log_level.upper(),
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] batcher: %(message)s")
    limit_root_handlers()
    batcher = Batcher(**config, shared=shared)
    if use_uvloop:
        import uvloop

        uvloop.install()

    async def main() -> None:
        task = asyncio.current_task()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)

        async def orphaned() -> None:
            while os.getppid() == parent:
                await asyncio.sleep(PARENT_CHECK_S)
            log.warning("worker %d is gone, stopping", parent)
            task.cancel()

        watch = asyncio.create_task(orphaned())
        try:
            await batcher.run()
        finally:
            watch.cancel()

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        pass
