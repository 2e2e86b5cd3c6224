"""The ceiling: raw aiokafka consuming, parsing and producing one output per input."""
from __future__ import annotations

import time

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.loaded_stack import IN_TOPIC, OUT_TOPIC


async def ceiling_eps(bootstrap: str, n: int) -> float:
    """Raw aiokafka pass-through: getmany -> orjson.loads -> one send per input."""
    consumer = AIOKafkaConsumer(IN_TOPIC, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=20,
                                max_partition_fetch_bytes=4 << 20)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=262144)
    await consumer.start()
    await producer.start()
    try:
        got, t0 = 0, None
        while got < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if t0 is None and batch:
                t0 = time.monotonic()
            for msgs in batch.values():
                for m in msgs:
                    try:
                        orjson.loads(m.value)
                    except orjson.JSONDecodeError:
                        pass
                    await producer.send(OUT_TOPIC, m.value, key=m.key)
                    got += 1
        await producer.flush()
        return n / (time.monotonic() - t0)
    finally:
        await consumer.stop()
        await producer.stop()
