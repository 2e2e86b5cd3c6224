"""The topic contract (DESIGN.md sections 3 and 4) as pydantic models.

`write_json_schemas` exports one JSON Schema file per topic to `schemas/`,
so that a CRM team can validate what it consumes.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, field_validator

from stream.memo import Memo

SCHEMA_VERSION = 1
EventType = Literal["view", "click", "add_to_cart", "remove_from_cart", "purchase"]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # contract order; model code = index + 1
LifecycleStage = Literal["new", "active", "loyal", "at_risk", "churned", "reactivated"]
Tier = Literal["bronze", "silver", "gold"]
RiskLevel = Literal["medium", "high", "critical"]

# Event times outside these bounds are absurd for a shop and go to the DLQ.
MIN_EVENT_MS = int(datetime(1995, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
MAX_EVENT_MS = int(datetime(2100, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)

IdStr = Annotated[StrictStr, Field(min_length=1, max_length=128)]
# A member id holds no control character (U+0000-U+001F, U+007F-U+009F): the members table's
# bookkeeping keys start with U+0000 (stream/processing/keys.py), and no member id can.
MemberId = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")]


def _parse_rfc3339(text: str) -> int:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError("not an RFC 3339 timestamp") from None
    if dt.tzinfo is None:
        raise ValueError("RFC 3339 timestamp needs a time zone offset")
    return int(dt.timestamp() * 1000)


# RFC 3339 text -> epoch ms: events come in runs that share their timestamp (the lines
# of one order), and parsing is most of validating one.
EVENT_TIMES: Memo[str, int] = Memo(_parse_rfc3339, 65536)


# stream/domain/parsing.fast_event checks ShopEvent's constraints first in plain Python: a
# change here needs one there (tests/unit/domain/test_parsing.py compares the two).
class ShopEvent(BaseModel):
    """Input event on `shop.events`. `ts` is normalised to epoch milliseconds."""
    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: IdStr
    member_id: MemberId
    type: EventType
    item_id: IdStr
    ts: Union[StrictInt, StrictStr] = Field(
        description="event time: RFC 3339 string or epoch milliseconds")
    session_id: Optional[StrictStr] = Field(None, max_length=128)
    price: Optional[Union[StrictInt, StrictFloat]] = Field(None, ge=0)
    quantity: StrictInt = Field(1, ge=1)
    category: Optional[StrictStr] = Field(None, max_length=128)
    schema_version: Literal[1] = 1

    @field_validator("ts")
    @classmethod
    def _event_time(cls, v: Union[int, str]) -> int:
        if isinstance(v, str):
            v = EVENT_TIMES[v]
        if not MIN_EVENT_MS <= v < MAX_EVENT_MS:
            raise ValueError("event time outside 1995..2100")
        return v

    @field_validator("price")
    @classmethod
    def _finite(cls, v):
        if v is not None and not math.isfinite(v):
            raise ValueError("price must be finite")
        return v


class Reason(BaseModel):
    code: str = Field(description="stable machine code, e.g. INACTIVE_21D")
    text: str = Field(description="readable explanation")


class Factor(BaseModel):
    """One of the top factors behind the model's churn score, found by occlusion."""
    code: str = Field(description="MODEL_SILENCE, MODEL_RECENT_EVENT, MODEL_PURCHASES, MODEL_CART or MODEL_PACE")
    text: str = Field(description="readable explanation: what it is and how much it adds")
    contribution: float = Field(description="churn score with it minus the score without it (> 0)")


class MemberValue(BaseModel):
    recency_days: float = Field(description="days from the newest event to event_time")
    frequency: int = Field(description="purchase visits seen")
    monetary: float = Field(description="total spend seen")
    p_alive: Optional[float] = Field(None, description="BG/NBD probability that the member still buys "
                                                       "(null: no member-value model served)")
    expected_purchases_90d: Optional[float] = Field(None, description="expected orders in the 90 days after "
                                                                      "event_time (BG/NBD)")
    expected_spend_90d: Optional[float] = Field(None, description="expected spend in those 90 days (BG/NBD "
                                                                  "orders x Gamma-Gamma spend per order)")


class ChurnAlert(BaseModel):
    """`crm.churn-alerts`: one per risk episode."""
    schema_version: int = SCHEMA_VERSION
    alert_id: str = Field(description="deterministic, from the member and the newest event before the "
                                      "silence: an alert sent again has the same id (drop repeats by it)")
    member_id: str
    churn_probability: float
    risk_level: RiskLevel
    reasons: list[Reason]
    factors: list[Factor] = Field(description=(
        "the top factors behind the model's score, largest first (occlusion; empty when scoring them "
        "failed or none adds 0.01)"))
    lifecycle_stage: LifecycleStage
    value: MemberValue
    suggested_action: str
    model_version: str
    event_time: str = Field(description="RFC 3339 event time at which the risk was assessed")
    emitted_at: str = Field(description="RFC 3339 wall-clock time of sending")


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    rank: int
    reason: Optional[str] = Field(None, description="the signal that ranked it most: SEQUENCE_MODEL, "
                                                    "BOUGHT_BEFORE, BOUGHT_TOGETHER or TRENDING")


class RecommendationUpdate(BaseModel):
    """`crm.recommendations`: sent when a member's top-K changes."""
    schema_version: int = SCHEMA_VERSION
    update_id: str = Field(description="deterministic, from the member, the member state scored (event "
                                       "count, based_on), model_version and fallback: an update sent again "
                                       "has the same id (drop repeats by it)")
    member_id: str
    items: list[RecommendedItem]
    model_version: str
    fallback: bool = Field(description="true when served without the model")
    based_on: str = Field(description="id of the newest event the list reflects")
    event_time: str


class SegmentChange(BaseModel):
    """`crm.segments`: sent when lifecycle stage or tier changes."""
    schema_version: int = SCHEMA_VERSION
    change_id: str = Field(description="deterministic, from the member, the event or inactivity checkpoint "
                                       "that decided the change, and the change: a change sent again has the "
                                       "same id (drop repeats by it)")
    member_id: str
    lifecycle_stage: LifecycleStage
    tier: Tier
    previous_lifecycle_stage: Optional[LifecycleStage]
    previous_tier: Optional[Tier]
    value: Optional[MemberValue] = Field(None, description="the member's value at event_time")
    event_time: str


class Anomaly(BaseModel):
    """`crm.anomalies`: for fraud and abuse review, not automatic action."""
    schema_version: int = SCHEMA_VERSION
    anomaly_id: str = Field(description="deterministic, from the member and the purchase event that raised "
                                        "it: an anomaly sent again has the same id (drop repeats by it)")
    member_id: str
    anomaly_score: float = Field(ge=0, le=1)
    reasons: list[Reason]
    event_ids: list[str]
    event_time: str


TOPIC_MODELS: dict[str, type[BaseModel]] = {
    "shop.events": ShopEvent,
    "crm.churn-alerts": ChurnAlert,
    "crm.recommendations": RecommendationUpdate,
    "crm.segments": SegmentChange,
    "crm.anomalies": Anomaly,
}


def json_schemas() -> dict[str, str]:
    """File name -> JSON Schema text, one per topic."""
    out = {}
    for topic, model in TOPIC_MODELS.items():
        schema = model.model_json_schema()
        schema["$id"] = f"memberstream:{topic}"
        out[f"{topic}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def write_json_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in json_schemas().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
