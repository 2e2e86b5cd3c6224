"""The ingest agent: shop events -> state, outputs; and the scorers.

The agent takes batches of `shop.events` records and hands them to the
processor. With MEMBERSTREAM_FRAMES=true the batcher (stream/batcher.py,
started here in a thread of every worker) first moves `shop.events` into
frames of many records, and the agent takes a few frames at a time (one
Faust event each); DESIGN.md section 8 says why that is not the default.

Members a batch touched are scored by `scoring_concurrency` scoring tasks,
each sending one Triton request for as many pending members as it holds, so
the number of model rows follows the number of members, not of events.

At-least-once: a batch's input messages are acknowledged only after its
outputs and changelog records are delivered; outputs carry deterministic
ids; a member awaiting scoring is flagged in the changelog, so a restart
re-scores it.
"""
from __future__ import annotations

import asyncio
import logging

from . import framing, tansu_quirks, topics
from .app import app, settings
from .batcher import Batcher
from .members_table import members
from .processor import BatchResult, MemberProcessor, Record
from .scorer import TritonScorer

log = logging.getLogger(__name__)

# The agent's input: shop.events itself (the default), or the batcher's frames
# (MEMBERSTREAM_FRAMES=true: faster, but see DESIGN.md section 8 on rebalancing).
if settings.frames:
    source = app.topic(topics.frames_topic(settings.app_id), key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw",
                       partitions=settings.partitions, internal=True)
else:
    source = app.topic(topics.SHOP_EVENTS, key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
scorer = TritonScorer(settings.triton_url, settings.triton_model, settings.triton_timeout_s,
                      settings.triton_max_rows)
processor = MemberProcessor(settings, members.data, scorer)
batcher = Batcher(settings.bootstrap_servers, topics.SHOP_EVENTS, topics.frames_topic(settings.app_id),
                  f"{settings.app_id}-batcher", frame_records=settings.frame_max_events,
                  fetch_max_wait_ms=tansu_quirks.FETCH_MAX_WAIT_MS if settings.embedded_broker else 500,
                  session_timeout_ms=int(tansu_quirks.FAUST_SETTINGS["broker_session_timeout"] * 1000),
                  heartbeat_interval_ms=500)
_scorer_started = asyncio.Event()


def _records(events) -> list[Record]:
    if not settings.frames:
        return [Record(e.message.partition, e.message.offset, e.message.key, e.message.value)
                for e in events]
    out = []
    for e in events:
        partition, records = framing.unpack(e.message.value)
        if partition != e.message.partition:
            raise framing.FrameError(f"frame of partition {partition} on partition {e.message.partition}")
        out += [Record(partition, offset, key, value) for offset, key, value in records]
    return out


async def publish(result: BatchResult) -> None:
    """Send a result's outputs and changelog records; wait until all are delivered."""
    changelog = members.changelog_topic.get_topic_name()
    pending = []
    for out in result.outputs:
        pending.append(await app.producer.send(out.topic, out.key, out.value, None, None, out.headers))
    for member, state in result.changed.items():
        key, value = member.encode(), state.to_bytes()
        members.data[key] = value
        pending.append(await app.producer.send(changelog, key, value, state.partition, None, None))
    if pending:
        await asyncio.gather(*pending)
    if settings.embedded_broker and result.changed:
        # Tansu quirk 2: close each written changelog partition with a lone record.
        markers = []
        for partition in sorted({s.partition for s in result.changed.values()}):
            key, value = tansu_quirks.end_marker(partition, processor.schedule.watermarks.get(partition, 0))
            markers.append(await app.producer.send(changelog, key, value, partition, None, None))
        await asyncio.gather(*markers)


@app.agent(source)
async def ingest(stream):
    # Faust's start-up can leave the root logger at DEBUG, and then every debug call
    # of aiokafka and Faust builds a record (20-30 % of a trivial agent's CPU,
    # REAL-PARTS.md): back to the configured level once the worker runs.
    logging.getLogger().setLevel(settings.log_level.upper())
    await scorer.start()
    _scorer_started.set()
    batch = settings.batch_max_frames if settings.frames else settings.batch_max_events
    async for events in stream.take_events(batch, within=settings.batch_within_s):
        await publish(await processor.process(_records(events)))


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
    batcher.start_thread()
    try:
        while batcher.error is None:
            await asyncio.sleep(1.0)
        raise RuntimeError(f"batcher failed: {batcher.error!r}")
    finally:
        await asyncio.to_thread(batcher.stop_thread)


@app.on_partitions_revoked.connect
async def on_revoked(app, revoked, **kwargs) -> None:
    processor.forget_partitions({tp.partition for tp in revoked if tp.topic == source.get_topic_name()})
