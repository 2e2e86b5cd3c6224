"""The ingest agent: shop events -> state, outputs; and the scorers.

By default the batcher (stream/batcher.py, started here in a child process of
every worker) moves `shop.events` into frames of many records and the agent takes
a few frames at a time (one Faust event each); with MEMBERSTREAM_FRAMES=false
the agent reads `shop.events` itself. Either way the processor gets batches
of records.

Members a batch touched are scored by `scoring_concurrency` scoring tasks,
each sending one Triton request for as many pending members as it holds, so
the number of model rows follows the number of members, not of events.

At-least-once, without relying on Faust's offsets: the agent keeps its own
input cursor (stream/input_cursor.py) in the members changelog, next to the
states it produced, fills what Faust skips and drops what it redelivers; the
`Publisher` writes states and cursor together (outputs first, with
deterministic ids); a member awaiting scoring is flagged in its state, so a
restart re-scores it.
"""
from __future__ import annotations

import asyncio
import logging
import time

from aiokafka.errors import KafkaError
from faust.types import TP

from . import framing, tansu_quirks, topics
from .app import app, settings
from .batcher import Batcher
from .input_cursor import InputCursor, Refetcher, input_key, stored_offset
from .members_table import members
from .processor import BatchResult, MemberProcessor, Record
from .scorer import TritonScorer
from .sender import BatchSender

log = logging.getLogger(__name__)

# The agent's input: the batcher's frames (the default), or shop.events itself
# (MEMBERSTREAM_FRAMES=false); DESIGN.md section 8.
if settings.frames:
    source = app.topic(topics.frames_topic(settings.app_id), key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw",
                       partitions=settings.partitions, internal=True)
else:
    source = app.topic(topics.SHOP_EVENTS, key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
scorer = TritonScorer(settings.triton_url, settings.triton_model, settings.triton_timeout_s,
                      settings.triton_max_rows, settings.inactivity_checkpoints_days)
processor = MemberProcessor(settings, members.data, scorer)
sender = BatchSender(settings.bootstrap_servers, settings.producer_linger_s)
batcher = Batcher(settings.bootstrap_servers, topics.SHOP_EVENTS, topics.frames_topic(settings.app_id),
                  f"{settings.app_id}-batcher", frame_records=settings.frame_max_events,
                  fetch_max_wait_ms=settings.fetch_max_wait_ms,
                  session_timeout_ms=int(tansu_quirks.FAUST_SETTINGS["broker_session_timeout"] * 1000),
                  heartbeat_interval_ms=500, uvloop=settings.uvloop, log_level=settings.log_level)
# The agent's input offsets (stream/input_cursor.py): Faust's skips are filled, its
# redeliveries dropped. One lock orders the agent's batches and the fills.
cursor = InputCursor()
refetcher = Refetcher(settings.bootstrap_servers, source.get_topic_name(), settings.fetch_max_wait_ms)
watcher_fetcher = Refetcher(settings.bootstrap_servers, source.get_topic_name(), settings.fetch_max_wait_ms)
applying = asyncio.Lock()
# Owned partitions are checked for records left behind every STALL_CHECK_S, once
# their cursor stood still for AGENT_IDLE_S and either the agent got nothing for as
# long (Faust's queue is empty then) or Faust has not even handed the partition's next
# record to the stream (its fetch is behind, not its queue); any partition after
# PARTITION_IDLE_S.
# A partition found left behind is then read directly every RESCUE_CHECK_S until
# Faust has handed over the records read (seen: Faust stopping delivery of one
# partition for about 10 s, with no rebalance).
STALL_CHECK_S = 1.0
RESCUE_CHECK_S = 0.02
AGENT_IDLE_S = 2.0
PARTITION_IDLE_S = 30.0
agent_moved_at = 0.0  # monotonic time the agent last got a batch (0: not yet)
rescuing: dict[int, int] = {}  # partition -> the offset Faust must hand over to end it
_scorer_started = asyncio.Event()
# Faust events per agent batch, and the wait to fill one: frames, or records without frames.
BATCH = settings.batch_max_frames if settings.frames else settings.batch_max_events
BATCH_WITHIN_S = settings.frame_batch_within_s if settings.frames else settings.batch_within_s
# Seconds the agent waited instead of preparing batches, by what it waited for
# (Prometheus summaries: sum, count): its next input batch from Faust, the
# `applying` lock (held by a changelog flush or a fill), a free slot among the
# batches in flight, and output deliveries it published inline.
agent_waits: dict[str, list[float]] = {reason: [0.0, 0] for reason in
                                       ("input", "lock", "in_flight", "publish")}


def _waited(reason: str, since: float) -> float:
    now = time.monotonic()
    wait = agent_waits[reason]
    wait[0] += now - since
    wait[1] += 1
    return now


def _records(messages) -> list[Record]:
    """Input messages (partition, offset, key, value) -> the processor's records."""
    if not settings.frames:
        return [Record(m.partition, m.offset, m.key, m.value) for m in messages]
    out = []
    for m in messages:
        partition, records = framing.unpack(m.value)
        if partition != m.partition:
            raise framing.FrameError(f"frame of partition {partition} on partition {m.partition}")
        out += [Record(partition, offset, key, value) for offset, key, value in records]
    return out


async def _resume(partition: int, seen=None) -> None:
    if not cursor.knows(partition):
        cursor.set(partition, await refetcher.resume_offset(
            partition, stored_offset(members.data, partition), seen))


async def apply(messages, from_faust: bool = True) -> None:
    """Apply input messages in order, each exactly once: those below the cursor are
    redeliveries (dropped), a gap before one is read directly and applied first.
    The caller holds `applying`."""
    taken = []
    for m in messages:
        p = m.partition
        if not cursor.knows(p):
            await _resume(p, m.offset)
        gap = cursor.gap(p, m.offset)
        if gap < 0:
            if from_faust:
                processor.totals["redelivered"] += 1
            continue
        if not from_faust:
            processor.totals["gap_filled"] += 1
        if gap > 0:
            missing = await refetcher.fetch(p, cursor.next[p], m.offset)
            log.warning("partition %d: %d input records skipped before offset %d, read directly",
                        p, len(missing), m.offset)
            processor.totals["gap_filled"] += len(missing)
            taken += missing
        taken.append(m)
        cursor.advance(p, m.offset)
    if taken:
        prepared = processor.prepare(_records(taken))
        await decisions.submit(prepared, {p: cursor.next[p] for p in {m.partition for m in taken}})


class Decisions:
    """Pass 2 of the agent's batches, in order, while the agent prepares the next ones.

    A batch whose inactivity checkpoints need scores would otherwise hold the agent
    for a Triton round trip (seen: 40 % of the agent's time over the bench log).
    Up to `batches_in_flight` batches wait for their checkpoint scores at once;
    each is decided after the one before it, then published with the input offsets
    it reaches. A batch without checkpoints, with none in flight, is decided at once.
    """

    def __init__(self, in_flight: int) -> None:
        self.slots = asyncio.Semaphore(in_flight)
        self.last: asyncio.Task | None = None
        self.waiting = 0

    async def submit(self, prepared, inputs: dict[int, int]) -> None:
        if self.last is not None and self.last.done():
            self.last.result()  # a failed decision fails the agent
            self.last = None
        t = time.monotonic()
        if self.last is None and not prepared.rows:
            await self._publish(prepared, None, inputs)
            _waited("publish", t)
            return
        await self.slots.acquire()
        _waited("in_flight", t)
        self.waiting += 1
        scoring = asyncio.ensure_future(processor.score_checkpoints(prepared))
        self.last = asyncio.create_task(self._decide_after(self.last, prepared, scoring, inputs))

    async def _decide_after(self, before, prepared, scoring, inputs) -> None:
        try:
            if before is not None:
                await before
            await self._publish(prepared, await scoring, inputs)
        finally:
            self.waiting -= 1
            self.slots.release()

    @staticmethod
    async def _publish(prepared, scores, inputs: dict[int, int]) -> None:
        result = processor.decide(prepared, scores)
        result.inputs = inputs
        await publish(result)

    async def drained(self) -> None:
        """Every batch submitted so far is decided and published."""
        if self.last is not None:
            await self.last


decisions = Decisions(settings.batches_in_flight)


class Publisher:
    """Outputs go out at once; member states and input offsets reach the changelog at
    most every `changelog_flush_s` (a record cache, like Kafka Streams' commit
    interval): a member touched by several batches and scorings in between is
    written once, and neither the agent nor the scoring tasks wait for changelog
    round trips.

    A flush first waits until every output sent so far is delivered, then writes
    the dirty states and, after them in each partition, the input offset they
    reach; so whatever a restart recovers is a consistent prefix, and the input
    cursor re-applies from the offset it holds (outputs again with the same ids:
    at-least-once). Against the embedded broker each written partition is then
    closed by a lone end marker (Tansu quirk 2). Partitions are flushed before
    they are revoked, and everything at shutdown.
    """

    def __init__(self) -> None:
        self.states: dict[str, object] = {}
        self.inputs: dict[int, int] = {}
        self.sent: list = []
        self.due = asyncio.Event()
        self.flushing = asyncio.Lock()

    async def publish(self, result: BatchResult) -> None:
        self.sent += await sender.send((o.topic, o.key, o.value, None, o.headers) for o in result.outputs)
        self.states.update(result.changed)
        self.inputs.update(result.inputs)
        if len(self.states) >= settings.changelog_flush_members:
            self.due.set()

    def backlog(self) -> int:
        """Members, input offsets and outputs not yet flushed or being flushed."""
        return (len(self.states) + len(self.inputs) + len(self.sent) + self.flushing.locked()
                + decisions.waiting)

    async def flush(self) -> None:
        """Write what is dirty. Takes `applying`, so the caller must not hold it."""
        async with self.flushing:
            async with applying:  # the states and the offsets they reach, consistent
                await decisions.drained()
                states, inputs, sent = self.states, self.inputs, self.sent
                self.states, self.inputs, self.sent = {}, {}, []
                self.due.clear()
                records = [(member.encode(), state.to_bytes(), state.partition)
                           for member, state in states.items()]
                # After the partition's states: once it is in the changelog, they are too.
                records += [(input_key(p), str(offset).encode(), p) for p, offset in inputs.items()]
                for key, value, _ in records:
                    members.data[key] = value
            if sent:
                await asyncio.gather(*sent)
            if not records:
                return
            changelog = members.changelog_topic.get_topic_name()
            await asyncio.gather(*await sender.send((changelog, key, value, partition, None)
                                                    for key, value, partition in records))
            if settings.embedded_broker:
                # Tansu quirk 2: close each written changelog partition with a lone record
                # (a batch of its own: one partition each, one record each).
                watermarks = processor.schedule.watermarks
                marks = [(changelog, *tansu_quirks.end_marker(p, watermarks.get(p, 0)), p, None)
                         for p in sorted({p for _, _, p in records})]
                await asyncio.gather(*await sender.send(marks))


publisher = Publisher()
publish = publisher.publish


@app.task
async def flushing() -> None:
    while True:
        try:
            await asyncio.wait_for(publisher.due.wait(), settings.changelog_flush_s)
        except asyncio.TimeoutError:
            pass
        await publisher.flush()


@app.on_before_shutdown.connect
async def flush_at_shutdown(app, **kwargs) -> None:
    # Faust has stopped its consumer (revocations flushed); the last flush, then the sender.
    await publisher.flush()
    await sender.stop()


@app.agent(source)
async def ingest(stream):
    global agent_moved_at
    # Faust's start-up can leave the root logger at DEBUG, and then every debug call
    # of aiokafka and Faust builds a record (20-30 % of a trivial agent's CPU,
    # REAL-PARTS.md): back to the configured level once the worker runs.
    logging.getLogger().setLevel(settings.log_level.upper())
    await scorer.start()
    await sender.start()
    _scorer_started.set()
    t = time.monotonic()
    async for events in stream.take_events(BATCH, within=BATCH_WITHIN_S):
        agent_moved_at = t = _waited("input", t)
        async with applying:
            _waited("lock", t)
            await apply([e.message for e in events])
        t = time.monotonic()


async def _score_forever() -> None:
    await _scorer_started.wait()
    while True:
        await processor.pending_ready.wait()
        await publish(await processor.score_pending(settings.triton_max_rows))


@app.task
async def scoring() -> None:
    await asyncio.gather(*(_score_forever() for _ in range(settings.scoring_concurrency)))


@app.task
async def batching() -> None:
    if not settings.frames:
        return
    # Created here with the app's partition count, before a send could auto-create them.
    await topics.ensure_topics(settings.bootstrap_servers, settings.partitions,
                               names=(topics.SHOP_EVENTS, source.get_topic_name()))
    batcher.start()
    try:
        while batcher.error is None:
            await asyncio.sleep(1.0)
        raise RuntimeError(f"batcher failed: {batcher.error}")
    finally:
        await asyncio.to_thread(batcher.stop)


def _faust_last_handed(partition: int):
    """Offset of the partition's last record Faust handed to the stream, None if
    unknown. Reads the consumer's `_read_offset` (not public API)."""
    read = getattr(app.consumer, "_read_offset", None)
    return None if read is None else read.get(TP(source.get_topic_name(), partition))


def _faust_handed(partition: int, offset: int) -> bool:
    """Faust has handed the partition's record at `offset` (or a later one) to the stream."""
    last = _faust_last_handed(partition)
    return last is not None and last >= offset


def _faust_behind(partition: int) -> bool:
    """Faust has not handed the partition's next record to the stream yet (unknown
    counts as behind)."""
    last = _faust_last_handed(partition)
    return last is None or last < cursor.next[partition]


def owned_partitions() -> set[int]:
    """Partitions of the agent's input this worker owns."""
    return {tp.partition for tp in app.consumer.assignment() if tp.topic == source.get_topic_name()}


@app.task
async def left_behind() -> None:
    """Read directly what an owned partition holds past a cursor that stopped moving:
    records Faust skipped that were the partition's newest (no later one shows the gap),
    or a partition Faust stopped handing over."""
    await _scorer_started.wait()
    try:
        await _watch_for_left_behind(4 * BATCH)
    finally:
        await watcher_fetcher.stop()
        async with applying:  # the agent's refetcher is only used under the lock
            await refetcher.stop()


async def _watch_for_left_behind(limit: int) -> None:
    while True:
        await asyncio.sleep(RESCUE_CHECK_S if rescuing else STALL_CHECK_S)
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            continue
        owned = owned_partitions()
        for p in [p for p, until in rescuing.items() if p not in owned or _faust_handed(p, until)]:
            del rescuing[p]  # Faust delivers it again
        # Before Faust delivered anything (start-up) only the long wait applies.
        agent_idle = 0 < agent_moved_at <= time.monotonic() - AGENT_IDLE_S
        for p in sorted(owned):
            if not cursor.knows(p):
                async with applying:
                    await _resume(p)  # first sight: give Faust time to deliver
                continue
            idle = cursor.idle_s(p)
            stalled = idle >= AGENT_IDLE_S and (agent_idle or (agent_moved_at > 0 and _faust_behind(p)))
            if p not in rescuing and not stalled and idle < PARTITION_IDLE_S:
                continue
            # Read outside the lock (the agent goes on meanwhile; what it applied first
            # is dropped by `apply`), with the watcher's own consumer.
            start = cursor.next[p]
            try:
                missing = await watcher_fetcher.fetch(p, start, None, limit=limit)
            except KafkaError as exc:  # the next round tries again
                log.warning("partition %d: looking for records left behind: %r", p, exc)
                continue
            async with applying:
                if p not in owned_partitions() or app.rebalancing or not cursor.knows(p):
                    continue  # revoked meanwhile
                if not missing:
                    if p not in rescuing:
                        cursor.set(p, cursor.next[p])  # checked: nothing left behind
                    continue
                if p not in rescuing:
                    log.warning("partition %d: %d input records from offset %d left behind, read "
                                "directly until Faust hands over offset %d", p, len(missing), start,
                                missing[-1].offset)
                    rescuing[p] = missing[-1].offset
                await apply(missing, from_faust=False)


@app.on_partitions_revoked.connect
async def on_revoked(app, revoked, **kwargs) -> None:
    await publisher.flush()  # what we did with them, before their next owner recovers it
    revoked = {tp.partition for tp in revoked if tp.topic == source.get_topic_name()}
    processor.forget_partitions(revoked)
    cursor.forget(revoked)
