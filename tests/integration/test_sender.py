"""BatchSender against the real broker: the partition `send` would choose, the order
given, batches split when full, headers and null values kept."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.kafka.admin import ensure_topics
from stream.kafka.sender import BatchSender

pytestmark = pytest.mark.integration


async def _read(bootstrap: str, topic: str, n: int) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=20)
    await consumer.start()
    out: list = []
    try:
        while len(out) < n:
            batch = await consumer.getmany(timeout_ms=500)
            out += [m for msgs in batch.values() for m in msgs]
    finally:
        await consumer.stop()
    return out


def test_batch_sender_partitions_orders_and_splits_like_send(broker):
    keys = [f"member-{i % 37}".encode() for i in range(400)]
    big = b"x" * 300_000  # four of them overflow one 1 MiB batch

    async def go():
        await ensure_topics(broker.bootstrap, 4, names=("by-sender", "by-send"))
        sender = BatchSender(broker.bootstrap, 0.0)
        plain = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await plain.start()
        try:
            messages = [("by-sender", k, b"%d" % i, None, [("n", b"%d" % i)]) for i, k in enumerate(keys)]
            messages += [("by-sender", b"big", big, None, None) for _ in range(4)]
            messages += [("by-sender", b"tombstone", None, 2, None)]
            futures = await sender.send(messages)
            await asyncio.gather(*futures)
            await asyncio.gather(*[await plain.send("by-send", b"%d" % i, key=k) for i, k in enumerate(keys)])
            got = await _read(broker.bootstrap, "by-sender", len(messages))
            reference = await _read(broker.bootstrap, "by-send", len(keys))
        finally:
            await sender.stop()
            await plain.stop()
        return futures, got, reference

    futures, got, reference = asyncio.run(asyncio.wait_for(go(), 60))
    where = {m.value: m.partition for m in reference}
    small = [m for m in got if m.key not in (b"big", b"tombstone")]
    assert len(small) == 400
    assert all(m.partition == where[m.value] for m in small)  # the partition send chose
    assert all(m.headers == (("n", m.value),) for m in small)
    for p in range(4):  # the order given, within each partition
        values = [int(m.value) for m in small if m.partition == p]
        assert values == sorted(values) and values
    bigs = [m for m in got if m.key == b"big"]
    assert len(bigs) == 4 and all(m.value == big for m in bigs)
    assert len({m.partition for m in bigs}) == 1
    tomb = [m for m in got if m.key == b"tombstone"]
    assert [(m.partition, m.value) for m in tomb] == [(2, None)]
    # One batch per partition (the tombstone joins partition 2's), and the partition of the
    # big ones needs a second: three of them fill the 1 MiB batch.
    assert len(futures) == 4 + 1
