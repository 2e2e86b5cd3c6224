"""Topic names of the contract (docs/DESIGN.md sections 3 and 4), and the
worker's internal ones."""
from __future__ import annotations

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

