"""Publish a recorded log (JSON lines, the input contract) to `shop.events`.

Lines are sent byte for byte, keyed by the line's member_id when it can be
read. A file of other lines (binary, the wrong file) is refused before
anything is sent, naming its first bad line; `as_is` sends such lines too,
unkeyed, so that the worker's dead-letter path is exercised exactly as in
production. Every delivery is awaited: the stats count what the broker
acknowledged and what failed (after the producer's own retries), and the
CLI exits non-zero if anything failed.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from stream.contract import topics
from stream.kafka.admin import ensure_topics, started
from stream.contract.schemas import ShopEvent
from stream.kafka.security import PLAINTEXT, KafkaSecurity
from stream.tools.logs import read_log


class ReplayError(Exception):
    """The log cannot be replayed (missing file, bad arguments)."""


@dataclass
class ReplayStats:
    sent: int  # acknowledged by the broker
    seconds: float
    failed: int = 0
    first_error: str = ""

    def failure(self, exc: BaseException) -> None:
        self.failed += 1
        if not self.first_error:
            text = str(exc) if str(exc).startswith(type(exc).__name__) else f"{type(exc).__name__}: {exc}"
            self.first_error = text.splitlines()[0][:200]


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
                 lines: Optional[list[bytes]] = None, topic: str = topics.SHOP_EVENTS,
                 as_is: bool = False, timeout_s: float = 40.0, security: KafkaSecurity = PLAINTEXT,
                 replication: int = 1) -> ReplayStats:
    """As fast as possible unless `speed` (event-time factor) or `rate` (events/s) is
    given; `lines` in place of the file's (sent as they are). A record not
    acknowledged within `timeout_s` (the producer's retries included) failed."""
    if speed is not None and speed <= 0 or rate is not None and rate <= 0:
        raise ReplayError("--speed and --rate must be positive")
    lines = read_log(path, json_objects=not as_is) if lines is None else lines
    await ensure_topics(bootstrap, partitions, names=tuple(dict.fromkeys(topics.ALL + (topic,))), security=security,
                        replication=replication)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=262144, acks="all",
                                request_timeout_ms=int(timeout_s * 1000), **security.aiokafka())
    await started(producer, bootstrap)
    stats = ReplayStats(0, 0.0)
    in_flight: set[asyncio.Future] = set()

    def delivered(future: asyncio.Future) -> None:
        in_flight.discard(future)
        if future.cancelled():
            stats.failure(asyncio.CancelledError("cancelled"))
        elif future.exception() is not None:
            stats.failure(future.exception())
        else:
            stats.sent += 1

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
            try:
                future = await producer.send(topic, line, key=key)
            except KafkaError as exc:  # no metadata in time, a full buffer: this line is not sent
                stats.failure(exc)
                continue
            in_flight.add(future)
            future.add_done_callback(delivered)
            if n % 500 == 0 or n == len(lines):
                progress(n)
        await producer.flush()
        if in_flight:
            await asyncio.wait(set(in_flight))
    finally:
        await producer.stop()
    stats.seconds = time.monotonic() - t0
    return stats


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
