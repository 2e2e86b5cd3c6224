"""One worker's components, built from Settings, in one place.

Nothing is built at import: `Worker(settings, store, changelog_topic)` makes
the scorer, the processor, the sender, the batcher, the input cursor and its
refetchers, the ordered decisions and the commit protocol, and wires them
together. The Faust glue (stream/worker/agents.py, stall_watcher.py, web.py)
reaches them through it; the Worker itself never touches Faust, so a test
can build several in one process, with in-memory fakes for the store, the
sender and the scorer.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import MutableMapping, Optional

from stream.contract import topics
from stream.kafka import framing
from stream.kafka.batcher import Batcher
from stream.kafka.broker import broker_profile
from stream.kafka.refetcher import Refetcher
from stream.kafka.sender import BatchSender
from stream.processing import keys
from stream.processing.commit import Commit
from stream.processing.decisions import Decisions
from stream.processing.input_cursor import InputCursor
from stream.processing.intake import Intake
from stream.processing.processor import MemberProcessor
from stream.processing.records import BatchResult
from stream.processing.waits import Waits
from stream.scoring.triton import TritonScorer
from stream.settings import Settings
from stream.worker.dashboard import Feed
from stream.worker.health import Health, assess
from stream.worker.telemetry import Telemetry
from stream.worker.watchdog import Watchdog


def input_topic(settings: Settings) -> str:
    """The agent's input: the batcher's frames (the default), or shop.events itself
    (MEMBERSTREAM_FRAMES=false); docs/DESIGN.md section 8."""
    return topics.frames_topic(settings.app_id) if settings.frames else topics.SHOP_EVENTS


class Worker:
    def __init__(self, settings: Settings, store: MutableMapping[bytes, bytes], changelog_topic: str, *,
                 scorer=None, sender=None, refetcher=None, crashed=lambda: None) -> None:
        """`store`: the members table's data; `changelog_topic`: its changelog. `scorer`,
        `sender`, `refetcher`: stand-ins for tests (default: Triton, Kafka); `crashed`:
        the Faust app's crash reason, None while it runs (for the watchdog)."""
        s = self.settings = settings
        self.broker = broker_profile(settings)
        self.input_topic = input_topic(settings)
        self.store = store
        self.scorer = scorer or TritonScorer(s.triton_url, s.triton_model, s.triton_timeout_s,
                                             s.triton_max_rows, s.inactivity_checkpoints_days)
        self.telemetry = Telemetry()
        self.feed = Feed()  # what the dashboard shows of the outputs
        self.processor = MemberProcessor(s, store, self.scorer, self.telemetry)
        security = s.kafka_security
        self.sender = sender or BatchSender(s.bootstrap_servers, s.producer_linger_s, security=security)
        self.batcher = Batcher(s.bootstrap_servers, topics.SHOP_EVENTS, topics.frames_topic(s.app_id),
                               f"{s.app_id}-batcher", frame_records=s.frame_max_events,
                               fetch_max_wait_ms=self.broker.fetch_max_wait_ms,
                               session_timeout_ms=self.broker.session_timeout_ms,
                               heartbeat_interval_ms=self.broker.heartbeat_interval_ms,
                               uvloop=s.uvloop, log_level=s.log_level, security=security)
        # The agent's input offsets: Faust's skips are filled, its redeliveries dropped. One
        # lock orders the agent's batches, the stall watcher's fills and the commit's cut.
        self.cursor = InputCursor()
        self.refetcher = refetcher or Refetcher(s.bootstrap_servers, self.input_topic,
                                                self.broker.fetch_max_wait_ms, security)
        self.applying = asyncio.Lock()
        self.waits = Waits()
        self.decisions = Decisions(self.processor, self.publish, s.batches_in_flight, self.waits,
                                   s.scoring_hold_s)
        self.commit = Commit(self.sender, store, changelog_topic, applying=self.applying,
                             drained=self.decisions.drained, in_flight=lambda: self.decisions.waiting,
                             watermarks=self.processor.schedule.watermarks,
                             flush_members=s.changelog_flush_members, end_marker=self.broker.end_marker,
                             after_cut=self.processor.trim_cache)
        self.intake = Intake(self.processor, self.cursor, self.refetcher, store, self.decisions,
                             framing.records_of_frames if s.frames else framing.records)
        # Faust events per agent batch, and the wait to fill one: frames, or records without frames.
        self.batch = s.batch_max_frames if s.frames else s.batch_max_events
        self.batch_within_s = s.frame_batch_within_s if s.frames else s.batch_within_s
        self.watchdog = Watchdog(s.bootstrap_servers, s.broker_lost_exit_s, crashed, security=security,
                                 start_stall_exit_s=s.start_stall_exit_s)
        self.watchdog_task: Optional[asyncio.Task] = None
        self.started = asyncio.Event()  # scorer and sender started
        self.agent_moved_at = 0.0  # monotonic time the agent last got a batch (0: not yet)

    async def start(self) -> None:
        """In the worker's loop, before the first batch."""
        # Faust's start-up can leave the root logger at DEBUG, and then every debug call
        # of aiokafka and Faust builds a record (20-30 % of a trivial agent's CPU,
        # docs/broker.md): back to the configured level once the worker runs.
        logging.getLogger().setLevel(self.settings.log_level.upper())
        await self.scorer.start()
        await self.sender.start()
        self.started.set()

    async def publish(self, result: BatchResult) -> None:
        # Its changed states stay decoded until the commit holds them (a scoring's answer
        # is published while a commit may cut and trim the cache).
        busy, members = self.processor.publishing, list(result.changed)
        busy.update(members)
        try:
            await self.commit.publish(result)
        finally:
            busy.subtract(members)
            for member in members:
                if busy[member] <= 0:
                    del busy[member]
        self.telemetry.published(result.outputs)
        self.feed.published(result.outputs)

    async def take(self, messages) -> None:
        """One batch of input messages from Faust, applied in order (the agent's body)."""
        t = time.monotonic()
        async with self.applying:
            self.waits.since("lock", t)
            await self.intake.apply(messages)

    async def score_forever(self) -> None:
        """One scoring task: the pending members, as many per request as it holds."""
        await self.started.wait()
        while True:
            await self.processor.pending_ready.wait()
            await self.processor.breaker.until_retry()  # while Triton is down: at its backoff
            await self.publish(await self.processor.score_pending(self.settings.triton_max_rows))

    async def commit_forever(self) -> None:
        """A commit every `changelog_flush_s`, or sooner when enough members are dirty."""
        while True:
            try:
                await asyncio.wait_for(self.commit.due.wait(), self.settings.changelog_flush_s)
            except asyncio.TimeoutError:
                pass
            await self.commit.commit()

    async def revoke(self, partitions: set[int]) -> None:
        """Before the partitions' next owner recovers them: what we did with them
        committed, then forgotten."""
        self.decisions.release()  # batches held for Triton decided now, not by the next owner
        try:
            await self.commit.commit()
        finally:
            self.decisions.resume()
        self.processor.forget_partitions(partitions)
        self.cursor.forget(partitions)

    async def stop(self) -> None:
        """At shutdown, once no more input comes: the last commit, then the sender."""
        self.decisions.release()
        await self.commit.commit()
        await self.sender.stop()

    def health(self, ready: bool) -> Health:
        """What /health answers, `ready`: the worker takes input (stream/worker/health.py)."""
        return assess(ready=ready, scoring=self.processor.breaker, held=len(self.decisions.held),
                      held_s=self.decisions.held_for(), broker_down_s=self.watchdog.broker_down_s())

    def backlog(self) -> int:
        return self.commit.backlog()

    def scoring_backlog(self) -> int:
        return len(self.processor.pending)

    def members(self) -> int:
        """Members in the store: its keys less the per-partition bookkeeping."""
        store = self.store
        return len(store) - sum(k in store for k in keys.bookkeeping_keys(self.settings.partitions))
