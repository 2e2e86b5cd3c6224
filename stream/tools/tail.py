"""Read a topic and hand each message on as one JSON object."""
from __future__ import annotations

import asyncio
import base64
import time
from typing import AsyncIterator, Optional

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.kafka.admin import started


def as_json(msg, envelope: bool) -> dict:
    """The message's JSON value; with `envelope` (or a value that is not JSON)
    wrapped with topic, partition, offset, key and headers."""
    value = None
    if msg.value is not None:
        try:
            value = orjson.loads(msg.value)
        except orjson.JSONDecodeError:
            envelope = True
            try:
                value = msg.value.decode("utf-8")
            except UnicodeDecodeError:
                value = {"base64": base64.b64encode(msg.value).decode()}
    if not envelope and isinstance(value, dict):
        return value
    return {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
            "key": msg.key.decode("utf-8", "replace") if msg.key is not None else None,
            "headers": {k: v.decode("utf-8", "replace") for k, v in (msg.headers or ())},
            "value": value}


async def messages(bootstrap: str, topic: str, from_beginning: bool = False,
                   count: Optional[int] = None, idle_s: Optional[float] = None,
                   ready: Optional[asyncio.Event] = None) -> AsyncIterator:
    """Messages of all partitions of `topic`, until `count` or `idle_s` without one."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=50)
    await started(consumer, bootstrap)
    try:
        parts = None
        for _ in range(100):
            parts = consumer.partitions_for_topic(topic)
            if parts:
                break
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        if not parts:
            raise LookupError(f"topic {topic} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
            for tp in tps:
                await consumer.position(tp)
        if ready is not None:
            ready.set()
        seen, last = 0, time.monotonic()
        while count is None or seen < count:
            batch = await consumer.getmany(timeout_ms=100, max_records=500)
            if not batch:
                if idle_s is not None and time.monotonic() - last >= idle_s:
                    return
                continue
            last = time.monotonic()
            for tp_msgs in batch.values():
                for msg in tp_msgs:
                    yield msg
                    seen += 1
                    if count is not None and seen >= count:
                        return
    finally:
        await consumer.stop()
