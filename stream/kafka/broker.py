"""The broker the worker talks to, and what its Kafka clients are set to for it.

Apache Kafka (production, docker-compose.yml) gets the clients' ordinary
settings; the embedded Tansu broker (tests, demo, bench) gets its
workarounds (stream/kafka/tansu.py). This is the one place that branches on
`Settings.embedded_broker`: the rest of the worker asks its `BrokerProfile`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from stream.kafka import tansu
from stream.settings import Settings


@dataclass(frozen=True)
class BrokerProfile:
    # Extra faust.App settings.
    faust_settings: dict[str, Any] = field(default_factory=dict)
    # The longest a Fetch of the app's own consumers (batcher, refetchers) may park.
    fetch_max_wait_ms: int = 500
    # The batcher's consumer group (aiokafka's defaults against Kafka).
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    # (partition, watermark ms) -> key and value of the lone record that closes each
    # commit's changelog writes of a partition; None: not needed.
    end_marker: Optional[Callable[[int, int], tuple[bytes, bytes]]] = None
    # Called once before the Faust app is built.
    prepare_faust: Optional[Callable[[], None]] = None


def broker_profile(settings: Settings) -> BrokerProfile:
    if not settings.embedded_broker:
        return BrokerProfile()
    wait = settings.tansu_fetch_max_wait_ms
    return BrokerProfile(
        faust_settings=tansu.FAUST_SETTINGS, fetch_max_wait_ms=wait,
        session_timeout_ms=int(tansu.SESSION_TIMEOUT_S * 1000),
        heartbeat_interval_ms=int(tansu.HEARTBEAT_INTERVAL_S * 1000),
        end_marker=tansu.end_marker, prepare_faust=lambda: tansu.patch_faust(wait))
