"""Regression tests: each Tansu quirk that stream/kafka/tansu.py works around
still exists. When one of these fails, the broker was fixed: drop the workaround."""
from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _topic(bootstrap, name, partitions=1):
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


def test_quirk1_idempotent_producer_is_refused(broker):
    async def go():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True,
                                    request_timeout_ms=5000)
        try:
            await producer.start()
            await producer.send_and_wait("q1", b"x")
        finally:
            await producer.stop()
    with pytest.raises(Exception):
        run(go())


def test_quirk2_list_offsets_latest_stops_short_of_the_log_end(broker):
    async def go():
        await _topic(broker.bootstrap, "q2")
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=50)
        await producer.start()
        try:
            batch = producer.create_batch()
            for i in range(3):
                batch.append(key=None, value=b"%d" % i, timestamp=None)
            await (await producer.send_batch(batch, "q2", partition=0))
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition("q2", 0)
            listed = (await consumer.end_offsets([tp]))[tp]
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            records = await consumer.getmany(tp, timeout_ms=2000)
            return listed, len(records.get(tp, [])), consumer.highwater(tp)
        finally:
            await consumer.stop()
    listed, fetched, highwater = run(go())
    assert (fetched, highwater) == (3, 3)
    assert listed == 1  # base offset of the newest batch + 1, not 3


def test_quirk4_parked_fetch_waits_for_its_full_max_wait(broker):
    async def go():
        await _topic(broker.bootstrap, "q4", partitions=4)
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, fetch_max_wait_ms=1500,
                                    enable_auto_commit=False)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await consumer.start()
        await producer.start()
        try:
            # One fetch covers all four partitions; the data lands in one of them.
            tps = [TopicPartition("q4", p) for p in range(4)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            delays = []
            for i in range(6):
                await asyncio.sleep(0.25)
                sent = time.monotonic()
                await producer.send_and_wait("q4", b"%d" % i, partition=2)
                msg = await consumer.getone()
                delays.append(time.monotonic() - sent)
                assert msg.value == b"%d" % i
            return sorted(delays)[len(delays) // 2]
        finally:
            await producer.stop()
            await consumer.stop()
    # A broker that answers a parked fetch when data arrives delivers in a few ms.
    assert run(go()) > 0.3


def test_quirk5_join_group_waits_half_the_session_timeout(broker):
    async def go():
        await _topic(broker.bootstrap, "q5")
        consumer = AIOKafkaConsumer("q5", bootstrap_servers=broker.bootstrap, group_id="g5",
                                    session_timeout_ms=10000, heartbeat_interval_ms=500)
        t0 = time.monotonic()
        await consumer.start()
        try:
            while not consumer.assignment():
                await asyncio.sleep(0.05)
            return time.monotonic() - t0
        finally:
            await consumer.stop()
    assert run(go()) > 4.0  # half of the 10 s session timeout


def test_quirk6_auto_created_topics_get_four_partitions(broker):
    async def go():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait("q6-auto", b"x")
            return producer.client.cluster.partitions_for_topic("q6-auto")
        finally:
            await producer.stop()
    assert run(go()) == {0, 1, 2, 3}
