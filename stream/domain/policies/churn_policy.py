"""Churn alerts: one per risk episode, decided at inactivity checkpoints.

A member is re-scored when event time passes each checkpoint of silence
(7, 14, 21... days after their newest event). The first checkpoint whose
churn probability reaches the threshold opens an episode and sends one
alert; later checkpoints of the same silence send nothing (hysteresis).
The episode ends when the member acts again. The alert id is derived from
the member and the newest event before the silence, so a redelivered or
replayed alert carries the same id.
"""
from __future__ import annotations

import hashlib
from typing import Optional

from stream.domain.event_time import DAY_MS, now_rfc3339, rfc3339
from stream.domain import member_value as member_value_model
from stream.domain.member_state import MemberState
from stream.domain.member_value import ValueModel
from stream.contract.schemas import ChurnAlert, MemberValue, Reason


def alert_id(member_id: str, last_event_id: str) -> str:
    return hashlib.sha256(f"churn|{member_id}|{last_event_id}".encode()).hexdigest()[:32]


def risk_level(p: float) -> str:
    return "critical" if p >= 0.9 else "high" if p >= 0.75 else "medium"


def reasons(state: MemberState, checkpoint_days: int) -> list[Reason]:
    out = [Reason(code=f"INACTIVE_{checkpoint_days}D",
                  text=f"no activity for {checkpoint_days} days")]
    if state.cart_open > 0:
        out.append(Reason(code="CART_ABANDONED",
                          text=f"{state.cart_open} item(s) left in the cart"))
    spends = [v.spend for v in state.visits]
    if len(spends) >= 3:
        earlier = sum(spends[:-1]) / (len(spends) - 1)
        if earlier > 0 and spends[-1] < 0.5 * earlier:
            out.append(Reason(code="SPEND_DROP",
                              text=f"last order {spends[-1]:.2f} vs {earlier:.2f} on average before"))
    if state.purchase_visits <= 1:
        out.append(Reason(code="SINGLE_PURCHASE", text="has ordered at most once"))
    return out


def suggested_action(risk: str, reason_codes: set[str], tier: Optional[str]) -> str:
    if "CART_ABANDONED" in reason_codes:
        return "send a cart reminder"
    if risk == "critical" and tier == "gold":
        return "personal outreach from account manager"
    if risk in ("critical", "high"):
        return "send a win-back offer"
    return "send a re-engagement email with recommendations"


def member_value(state: MemberState, at_ms: int, model: Optional[ValueModel] = None) -> MemberValue:
    return MemberValue(recency_days=round((at_ms - state.last_ts) / DAY_MS, 3),
                       frequency=state.purchase_visits, monetary=round(state.monetary, 2),
                       **member_value_model.served(model, member_value_model.inputs_of(state), at_ms))


def at_checkpoint(state: MemberState, snapshot: MemberState, probability: float,
                  checkpoint_days: int, threshold: float, model_version: str,
                  value_model: Optional[ValueModel] = None, factors=()) -> Optional[ChurnAlert]:
    """Decide at a checkpoint; opens the episode when it sends an alert.

    `state` is the live member (its episode so far), `snapshot` the member as
    they were at the checkpoint, which the alert describes; `factors` the top
    factors behind the model's score (stream/scoring/explain.py), if known.
    """
    state.churn_probability = round(float(probability), 4)
    if state.episode is not None or probability < threshold:
        return None
    at_ms = snapshot.last_ts + checkpoint_days * DAY_MS
    state.episode = alert_id(snapshot.member_id, snapshot.last_event_id)
    why = reasons(snapshot, checkpoint_days)
    risk = risk_level(probability)
    return ChurnAlert(
        alert_id=state.episode, member_id=state.member_id,
        churn_probability=state.churn_probability, risk_level=risk, reasons=why, factors=list(factors),
        lifecycle_stage="at_risk", value=member_value(snapshot, at_ms, value_model),
        suggested_action=suggested_action(risk, {r.code for r in why}, snapshot.tier),
        model_version=model_version, event_time=rfc3339(at_ms), emitted_at=now_rfc3339())
