"""An inactivity checkpoint on its way through a batch, and the explanation of
the alerts it may send.

Pass 1 records a `Check` (the member frozen at the checkpoint), the batch's
request scores it, and pass 2 lets the churn policy decide. A checkpoint that
will open an episode (its churn at the threshold, no episode open when it was
scored) is explained before pass 2: the occlusion variants of every such row
(stream/scoring/explain.py) go to the scorer in one more request, and the
alert carries the top factors. If that request fails, the alerts go out
without factors rather than wait: the factors explain, they decide nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from stream.domain.member_state import MemberState, Visit
from stream.scoring import explain
from stream.scoring.scores import Row, Scores


@dataclass(slots=True)
class Check:
    state: MemberState
    snapshot: MemberState
    row: int  # in the batch's checkpoint request; -1: `churn` known already
    days: int
    due_ms: int
    index: int
    n_events: int  # the member's events when the checkpoint came due
    churn: Optional[float] = None
    # The row also answers the member's pending scoring (taken out of `pending`):
    # the items do not depend on the silence, only on the sequence.
    update: bool = False
    # The scored row of a checkpoint whose churn was known already (None otherwise,
    # or when it cannot alert): what its explanation occludes.
    inputs: Optional[Row] = None
    factors: list = field(default_factory=list)


def snapshot(state: MemberState) -> MemberState:
    """What the policies may read of a member at a checkpoint, frozen in time (pass 2
    sets `tier` again, as the steps before the checkpoint left it)."""
    return MemberState(
        member_id=state.member_id, partition=state.partition, times=[state.last_ts], first_ts=state.first_ts,
        last_event_id=state.last_event_id, purchase_visits=state.purchase_visits,
        monetary=state.monetary, cart_open=state.cart_open, tier=state.tier,
        visits=[Visit(v.event_id, v.ts, v.session, v.spend, v.flagged) for v in state.visits])


def to_explain(steps: list, rows: list[Row], scores: Optional[Scores], threshold: float):
    """(check, its row, its churn) of every checkpoint that may open an episode."""
    out = []
    for step in steps:
        if not isinstance(step, Check) or step.state.episode is not None:
            continue
        if step.row >= 0 and scores is not None:
            churn, row = float(scores.churn[step.row]), rows[step.row]
        else:
            churn, row = step.churn, step.inputs
        if row is not None and churn is not None and churn >= threshold:
            out.append((step, row, churn))
    return out


async def explain_checks(candidates, score) -> bool:
    """Sets each candidate's factors from one request through `score` (rows ->
    Scores or None); False when that request failed."""
    variants = [explain.occlusions(row) for _, row, _ in candidates]
    rows = [v.row for vs in variants for v in vs]
    if not rows:
        return True
    scores = await score(rows)
    if scores is None:
        return False
    at = 0
    for (step, _, churn), vs in zip(candidates, variants):
        step.factors = explain.factors(churn, vs, scores.churn[at:at + len(vs)].tolist())
        at += len(vs)
    return True
