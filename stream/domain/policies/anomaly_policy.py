"""Anomalies for fraud and abuse review: bursts of orders and spend spikes.

At most one anomaly per purchase event; its id names that event (its id and
the member's event count after it), so an anomaly sent again after a restart
has the id it had.
"""
from __future__ import annotations

from typing import Optional
from statistics import median

from stream.domain.event_time import rfc3339
from stream.domain.member_state import MemberState, Visit
from stream.domain.message_id import message_id
from stream.contract.schemas import Anomaly, Reason

BURST_WINDOW_MS = 60 * 60 * 1000
BURST_ORDERS = 4
SPIKE_FACTOR = 10.0
SPIKE_HISTORY = 4


def anomaly_id(member_id: str, n_events: int, event_id: str) -> str:
    return message_id("anomaly", member_id, n_events, event_id)


def on_purchase(state: MemberState, visit: Visit, started: bool, event_id: str) -> Optional[Anomaly]:
    reasons, ids, score = [], [], 0.0
    if started:
        burst = [v for v in state.visits if visit.ts - v.ts < BURST_WINDOW_MS]
        if len(burst) >= BURST_ORDERS:
            reasons.append(Reason(code="PURCHASE_VELOCITY",
                                  text=f"{len(burst)} orders within one hour"))
            ids += [v.event_id for v in burst]
            score = max(score, min(1.0, len(burst) / (2 * BURST_ORDERS)))
    history = [v.spend for v in state.visits[:-1] if v.spend > 0]
    if not visit.flagged and len(history) >= SPIKE_HISTORY:
        typical = median(history)
        if visit.spend > SPIKE_FACTOR * typical:
            visit.flagged = True
            reasons.append(Reason(code="SPEND_SPIKE",
                                  text=f"order of {visit.spend:.2f} vs a typical {typical:.2f}"))
            ids += [visit.event_id] + ([event_id] if event_id != visit.event_id else [])
            score = max(score, min(1.0, visit.spend / typical / (5 * SPIKE_FACTOR)))
    if not reasons:
        return None
    return Anomaly(anomaly_id=anomaly_id(state.member_id, state.n_events, event_id),
                   member_id=state.member_id, anomaly_score=round(score, 4), reasons=reasons,
                   event_ids=list(dict.fromkeys(ids)), event_time=rfc3339(state.last_ts))
