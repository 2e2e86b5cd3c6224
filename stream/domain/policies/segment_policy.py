"""Lifecycle stage and value tier; a change is published, nothing else.

A change's id names the step that decided it (the event, or the inactivity
checkpoint after it) and the change made, so a change sent again after a
restart has the id it had, and two changes never share one: a member's event
count tells their steps apart even where event ids or event times repeat.
"""
from __future__ import annotations

from typing import Callable, Optional

from stream.domain.event_time import rfc3339
from stream.domain.member_state import MemberState
from stream.domain.message_id import message_id
from stream.contract.schemas import SCHEMA_VERSION


def lifecycle_stage(state: MemberState, purchase_visits: int, loyal_after_visits: int) -> str:
    if state.churned:
        return "churned"
    if state.episode is not None:
        return "at_risk"
    if state.reactivated:
        return "reactivated"
    if purchase_visits >= loyal_after_visits:
        return "loyal"
    if purchase_visits >= 2:
        return "active"
    return "new"


def tier(monetary: float, thresholds: list[float]) -> str:
    silver, gold = thresholds
    return "gold" if monetary >= gold else "silver" if monetary >= silver else "bronze"


def on_member_event(state: MemberState, started_visit: bool) -> None:
    """The member acted: an open episode or churn ends, and they count as reactivated
    until their next new order."""
    if state.episode is not None or state.churned:
        state.episode = None
        state.churned = False
        state.reactivated = True
    elif started_visit:
        state.reactivated = False


def change_id(member_id: str, cause: tuple[str, int, int], previous: tuple[Optional[str], Optional[str]],
              stage: str, level: str) -> str:
    return message_id("segment", member_id, *cause, *previous, stage, level)


def segment_change(state: MemberState, purchase_visits: int, monetary: float, at_ms: int,
                   loyal_after_visits: int, thresholds: list[float],
                   cause: tuple[str, int, int], value: Optional[Callable[[], dict]] = None) -> Optional[dict]:
    """Stage and tier as of one step (counters as they were then); None if unchanged.
    `cause` is the step: (event id, the member's event count after that event,
    checkpoint days, 0 for the event itself). The `crm.segments` message as a dict
    in the field order of schemas.SegmentChange (checked against the model in
    tests/unit/domain/test_policies.py). `value`: a callable giving the member's value
    (schemas.MemberValue's fields), called only for a change."""
    stage = lifecycle_stage(state, purchase_visits, loyal_after_visits)
    level = tier(monetary, thresholds)
    if stage == state.stage and level == state.tier:
        return None
    change = {"schema_version": SCHEMA_VERSION,
              "change_id": change_id(state.member_id, cause, (state.stage, state.tier), stage, level),
              "member_id": state.member_id, "lifecycle_stage": stage,
              "tier": level, "previous_lifecycle_stage": state.stage, "previous_tier": state.tier,
              "value": value() if value is not None else None, "event_time": rfc3339(at_ms)}
    state.stage, state.tier = stage, level
    return change
