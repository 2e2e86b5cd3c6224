"""The trivial Faust agent's throughput, the reference point. The agent itself is
bench/faust_trivial.py, run as its own process (it builds its Faust app on import)."""
from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from bench.loaded_stack import IN_TOPIC, PARTITIONS
from stream.kafka.admin import ensure_topics
from stream.tools.launcher import Broker, free_port, spawn, stopping


async def _count_until(bootstrap: str, topic: str, n: int, timeout: float,
                       proc=None) -> tuple[float, float]:
    """Read `topic` from the beginning until n messages; (first arrival, last arrival)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=20)
    await consumer.start()
    try:
        got, first, deadline = 0, None, time.monotonic() + timeout
        while got < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: {got} of {n} messages after {timeout:.0f} s")
            if proc is not None and proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}; see {proc.log_path}")
            batch = await consumer.getmany(timeout_ms=500, max_records=10000)
            size = sum(len(v) for v in batch.values())
            if size and first is None:
                first = time.monotonic()
            got += size
        return first, time.monotonic()
    finally:
        await consumer.stop()


def faust_trivial_eps(broker: Broker, n: int, work_dir: Path, tuned: bool) -> float:
    """Forwarded events/s of bench/faust_trivial.py, from its first output to its n-th."""
    name = "faust-trivial-tuned" if tuned else "faust-trivial"
    out_topic = f"bench.{name}-out"
    asyncio.run(ensure_topics(broker.bootstrap, PARTITIONS, names=(out_topic,)))
    env = {**os.environ, "BENCH_BROKER": broker.url, "BENCH_IN": IN_TOPIC, "BENCH_OUT": out_topic,
           "BENCH_WEB_PORT": str(free_port()), "BENCH_DATADIR": str(work_dir / name),
           "BENCH_TUNED": "1" if tuned else "0"}
    proc = spawn(name, [sys.executable, "-m", "bench.faust_trivial", "worker", "-l", "warn"],
                 work_dir, env=env)
    with stopping(proc):
        first, last = asyncio.run(_count_until(broker.bootstrap, out_topic, n, 900, proc))
    return (n - 1) / (last - first)
