"""`python -m bench.relay BOOTSTRAP SOURCE TARGET FETCH_MAX_WAIT_MS`: one raw aiokafka hop
for the bench's latency floor; every message of SOURCE sent on to TARGET as soon as it
is fetched. Prints "ready" once positioned at the end of SOURCE; stops on SIGTERM."""
from __future__ import annotations

import asyncio
import signal
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def relay(bootstrap: str, source: str, target: str, fetch_max_wait_ms: int) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="latest", fetch_max_wait_ms=fetch_max_wait_ms)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await consumer.start()
    await producer.start()
    try:
        await consumer.seek_to_end()
        for tp in consumer.assignment():
            await consumer.position(tp)  # resolved now, not at the first fetch
        print("ready", flush=True)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            for msgs in batch.values():
                for m in msgs:
                    await producer.send(target, m.value, key=m.key)
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    bootstrap, source, target, wait = sys.argv[1:5]
    asyncio.run(relay(bootstrap, source, target, int(wait)))
