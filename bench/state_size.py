"""Serialised member state after 50 events."""
from __future__ import annotations

import numpy as np

from stream.settings import Settings


def state_bytes_after_50(lines: list[bytes], settings: Settings, loaded) -> dict:
    """Serialised state of the first member to reach 50 valid events in the log, with
    what the pipeline adds: the model's churn probability and top-K recommendations."""
    from models.serving import predict
    from stream.domain.member_state import MemberState, apply_event, model_inputs
    from stream.domain.parsing import Rejected, parse_event
    from stream.domain.policies.recommendation_policy import recommendation_update

    model, vocab, hp = loaded
    states: dict[str, MemberState] = {}
    for line in lines:
        e = parse_event(line, None, 1 << 20)
        if isinstance(e, Rejected):
            continue
        s = states.setdefault(e.member_id, MemberState(e.member_id, 0))
        apply_event(s, e, settings.sequence_length)
        if s.n_events == 50:
            items, types, gaps = model_inputs(s, settings.sequence_length)
            churn, top, scores = predict(model, vocab, np.array([items], dtype=object),
                                         np.array([types], dtype=np.int8), np.array([gaps], dtype=np.float32),
                                         np.zeros((1, 1), np.float32), k=hp["top_k"])
            s.churn_probability = round(float(churn[0]), 4)
            recommendation_update(s, [i.decode() for i in top[0]], scores[0], settings.recommendations_k,
                                  "bench", False)
            return {"bytes": len(s.to_bytes()), "member_id": s.member_id}
    raise ValueError("no member reaches 50 events in the bench log")
