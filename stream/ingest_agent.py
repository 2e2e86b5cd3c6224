"""The ingest agent: batches of shop events -> state, one scoring call, outputs.

At-least-once: a batch's input offsets are acknowledged only after its
outputs and changelog records are delivered; outputs carry deterministic ids.
"""
from __future__ import annotations

import asyncio
import logging

from . import tansu_quirks, topics
from .app import app, settings
from .members_table import members
from .processor import MemberProcessor, Record
from .scorer import TritonScorer

log = logging.getLogger(__name__)

shop_events = app.topic(topics.SHOP_EVENTS, key_type=bytes, value_type=bytes,
                        key_serializer="raw", value_serializer="raw",
                        partitions=settings.partitions)
scorer = TritonScorer(settings.triton_url, settings.triton_model, settings.triton_timeout_s,
                      settings.triton_max_rows)
processor = MemberProcessor(settings, members.data, scorer)


@app.agent(shop_events)
async def ingest(stream):
    await scorer.start()
    changelog = members.changelog_topic.get_topic_name()
    async for events in stream.take_events(settings.batch_max_events, within=settings.batch_within_s):
        records = [Record(e.message.partition, e.message.offset, e.message.key, e.message.value)
                   for e in events]
        result = await processor.process(records)
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


@app.on_partitions_revoked.connect
async def on_revoked(app, revoked, **kwargs) -> None:
    processor.forget_partitions({tp.partition for tp in revoked if tp.topic == topics.SHOP_EVENTS})
