"""Topic names of the contract and their explicit creation.

Every topic is created explicitly with the app's partition count: brokers
that auto-create topics pick their own count (Tansu: 4), which would break
co-partitioning of events, outputs and the members changelog.
"""
from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

SHOP_EVENTS = "shop.events"
DEAD_LETTER = "shop.events.dlq"
CHURN_ALERTS = "crm.churn-alerts"
RECOMMENDATIONS = "crm.recommendations"
SEGMENTS = "crm.segments"
ANOMALIES = "crm.anomalies"
OUTPUTS = (CHURN_ALERTS, RECOMMENDATIONS, SEGMENTS, ANOMALIES)
ALL = (SHOP_EVENTS, DEAD_LETTER, *OUTPUTS)


def frames_topic(app_id: str) -> str:
    """Internal: `shop.events` packed into frames by the batcher, same partitions."""
    return f"{app_id}-shop-events-frames"


async def ensure_topics(bootstrap: str, partitions: int, names=ALL) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(n, partitions, 1) for n in names if n not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created them meanwhile
    finally:
        await admin.close()
