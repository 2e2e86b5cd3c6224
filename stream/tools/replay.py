"""Publish a recorded log (JSON lines, the input contract) to `shop.events`.

Lines are sent byte for byte: a malformed line stays malformed, so that the
worker's dead-letter path is exercised exactly as in production. The key
is the line's member_id when it can be read.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import orjson
from aiokafka import AIOKafkaProducer

from stream.contract import topics
from stream.kafka.admin import ensure_topics
from stream.contract.schemas import ShopEvent
from stream.tools.logs import read_log


class ReplayError(Exception):
    """The log cannot be replayed (missing file, bad arguments)."""


@dataclass
class ReplayStats:
    sent: int
    seconds: float


def _key_and_time(line: bytes) -> tuple[Optional[bytes], Optional[float]]:
    try:
        data = orjson.loads(line)
        member = data.get("member_id") if isinstance(data, dict) else None
        key = member.encode() if isinstance(member, str) else None
        ts = ShopEvent._event_time(data["ts"]) / 1000.0 if key else None
        return key, ts
    except Exception:  # a malformed line: sent unkeyed, judged by the worker
        return None, None


async def replay(path: Path, bootstrap: str, partitions: int, speed: Optional[float] = None,
                 rate: Optional[float] = None, progress: Callable[[int], None] = lambda n: None,
                 lines: Optional[list[bytes]] = None, topic: str = topics.SHOP_EVENTS) -> ReplayStats:
    """As fast as possible unless `speed` (event-time factor) or `rate` (events/s) is given."""
    if speed is not None and speed <= 0 or rate is not None and rate <= 0:
        raise ReplayError("--speed and --rate must be positive")
    lines = read_log(path) if lines is None else lines
    await ensure_topics(bootstrap, partitions, names=tuple(dict.fromkeys(topics.ALL + (topic,))))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                max_batch_size=262144, acks="all")
    await producer.start()
    t0 = time.monotonic()
    first_ts = None
    try:
        for n, line in enumerate(lines, 1):
            key, ts = _key_and_time(line)
            if rate is not None:
                await _sleep_until(t0 + (n - 1) / rate)
            elif speed is not None and ts is not None:
                first_ts = ts if first_ts is None else first_ts
                await _sleep_until(t0 + (ts - first_ts) / speed)
            await producer.send(topic, line, key=key)
            if n % 5000 == 0:
                progress(n)
        await producer.flush()
    finally:
        await producer.stop()
    return ReplayStats(len(lines), time.monotonic() - t0)


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
