"""One member scored at a given event time, on request (GET /members/{id}?at=...).

What a CRM asks before a campaign, and what `memberstream evaluate-stream` reads
at its cutoff: the churn probability at the silence from the member's newest
event to that time, a fresh recommendation list (the blend, with the item
statistics as they are now) and the member's value at that time. It changes
nothing: no state, no output topic.
"""
from __future__ import annotations

from typing import Optional

from stream.domain.event_time import rfc3339
from stream.domain.member_state import MemberState
from stream.domain.member_value import contract_value, inputs_of
from stream.processing.records import BatchResult


async def assess(processor, state: MemberState, at_ms: int) -> Optional[dict]:
    """The member at `at_ms`; None when the model cannot score now (circuit open, or
    the request failed)."""
    out = BatchResult()
    silence_s = max(at_ms - state.last_ts, 0) / 1000.0
    scores = await processor._score([processor._row(state, silence_s)], out)
    processor.totals.update(out.counts)
    if scores is None:
        return None
    ranked, fallback = processor.recommender.recommend(state, scores.items[0], scores.scores[0])
    return {"event_time": rfc3339(at_ms), "churn_probability": round(float(scores.churn[0]), 6),
            "recommendations": [{"item_id": i, "score": s, "reason": r} for i, s, r in ranked],
            "recommendations_fallback": fallback,
            "value": contract_value(processor.value_model, inputs_of(state), state.last_ts, at_ms)}
