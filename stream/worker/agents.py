"""The worker's Faust registrations: the ingest agent, its tasks and signals.

By default the batcher (stream/kafka/batcher.py, in a child process of every
worker) moves `shop.events` into frames of many records and the agent takes
a few frames at a time (one Faust event each); with MEMBERSTREAM_FRAMES=false
the agent reads `shop.events` itself. Either way the processor gets batches
of records (stream/processing/intake.py).

Members a batch touched are scored by `scoring_concurrency` scoring tasks,
each sending one Triton request for as many pending members as it holds, so
the number of model rows follows the number of members, not of events.

At-least-once, without relying on Faust's offsets: the worker keeps its own
input cursor in the members changelog, next to the states it produced, fills
what Faust skips and drops what it redelivers; the commit protocol
(stream/processing/commit.py) writes states and cursor together, outputs
first, with deterministic ids; a member awaiting scoring is flagged in its
state, so a restart re-scores it.
"""
from __future__ import annotations

import asyncio
import time

import faust

from stream.contract import topics
from stream.kafka.admin import ensure_topics
from stream.log_limit import json_root_handlers, limit_root_handlers
from stream.worker.stall_watcher import StallWatcher
from stream.worker.telemetry import watch_gc, watch_loop_lag
from stream.worker.worker import Worker


def register(app: faust.App, worker: Worker) -> StallWatcher:
    """The agent over the worker's input topic, the scoring, commit, batcher and stall
    watcher tasks, and the commits before a revocation and at shutdown."""
    s = worker.settings
    source = app.topic(worker.input_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=s.partitions, internal=s.frames)
    watcher = StallWatcher(app, worker)

    @app.agent(source, name="memberstream.ingest")
    async def ingest(stream):
        await worker.start()
        t = time.monotonic()
        async for events in stream.take_events(worker.batch, within=worker.batch_within_s):
            worker.agent_moved_at = worker.waits.since("input", t)
            await worker.take([e.message for e in events])
            t = time.monotonic()

    @app.task
    async def loop_lag() -> None:
        await watch_loop_lag(worker.telemetry)

    @app.task
    async def gc_pauses() -> None:
        await watch_gc(worker.telemetry)

    @app.task
    async def committing() -> None:
        await worker.commit_forever()

    @app.task
    async def scoring() -> None:
        await asyncio.gather(*(worker.score_forever() for _ in range(s.scoring_concurrency)))

    @app.task
    async def batching() -> None:
        if not s.frames:
            return
        # Created here with the app's partition count, before a send could auto-create them.
        await ensure_topics(s.bootstrap_servers, s.partitions, names=(topics.SHOP_EVENTS, worker.input_topic),
                            security=s.kafka_security, replication=s.topic_replication_factor)
        batcher = worker.batcher
        batcher.start()
        try:
            while batcher.error is None:
                await asyncio.sleep(1.0)
            raise RuntimeError(f"batcher failed: {batcher.error}")
        finally:
            await asyncio.to_thread(batcher.stop)

    @app.task
    async def left_behind() -> None:
        await watcher.run()

    @app.task
    async def watching() -> None:
        limit_root_handlers()  # Faust has set up logging by now
        if s.log_format == "json":
            json_root_handlers()
        # A task of the loop, not of the app: it must outlive a crashed app.
        worker.watchdog_task = asyncio.get_running_loop().create_task(worker.watchdog.run())

    @app.on_partitions_revoked.connect
    async def on_revoked(app, revoked, **kwargs) -> None:
        await worker.revoke({tp.partition for tp in revoked if tp.topic == worker.input_topic})

    @app.on_before_shutdown.connect
    async def at_shutdown(app, **kwargs) -> None:
        # Faust has stopped its consumer (revocations committed): the last commit, then the sender.
        await worker.stop()

    return watcher
