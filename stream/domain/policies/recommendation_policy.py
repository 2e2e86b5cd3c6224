"""Recommendation updates: published when the member's top-K item ids change.

Which of a member's states get scored depends on load (DESIGN.md section 8), so
an update's id names the state it answers (the member's event count and newest
event id), the model version and whether it is the fallback: an update sent
again after a restart has the id it had, and equal ids are answers to the same
member state by the same model (or both by the fallback, whose popular items are
counted since the worker started and may differ).
"""
from __future__ import annotations

from typing import Optional, Sequence

from stream.domain.event_time import rfc3339
from stream.domain.member_state import MemberState
from stream.domain.message_id import message_id
from stream.contract.schemas import SCHEMA_VERSION


def update_id(member_id: str, n_events: int, last_event_id: str, model_version: str, fallback: bool) -> str:
    return message_id("recommendation", member_id, n_events, last_event_id, model_version, fallback)


def recommendation_update(state: MemberState, items: Sequence[str], scores: Sequence[float], k: int,
                          model_version: str, fallback: bool) -> Optional[dict]:
    """The `crm.recommendations` message as a dict in the field order of
    schemas.RecommendationUpdate (built directly: one per scored member, and the
    model's validation and dump cost four times the rest; tests/unit/domain/test_policies.py
    checks the dict against the model)."""
    top = [(item, round(float(score), 6)) for item, score in zip(items[:k], scores[:k])]
    if [i for i, _ in top] == [i for i, _ in state.recommendations] and fallback == state.recommendations_fallback:
        return None
    state.recommendations, state.recommendations_fallback = top, fallback
    return {"schema_version": SCHEMA_VERSION,
            "update_id": update_id(state.member_id, state.n_events, state.last_event_id, model_version, fallback),
            "member_id": state.member_id,
            "items": [{"item_id": i, "score": s, "rank": r} for r, (i, s) in enumerate(top, 1)],
            "model_version": model_version, "fallback": fallback, "based_on": state.last_event_id,
            "event_time": rfc3339(state.last_ts)}


def fallback_items(state: MemberState, popular: Sequence[str], k: int) -> list[str]:
    """Without the model: the member's own most frequent items, then popular ones."""
    counts: dict[str, int] = {}
    for item in reversed(state.items):
        counts[item] = counts.get(item, 0) + 1
    own = sorted(counts, key=lambda i: -counts[i])
    out = own[:k]
    out += [i for i in popular if i not in counts][:k - len(out)]
    return out
