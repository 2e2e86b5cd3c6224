"""Fit the served member-value model (stream/domain/member_value.py) on training data.

BG/NBD by maximum likelihood (models/evaluation/bgnbd.py) and Gamma-Gamma by
maximum likelihood on the members with repeat purchases (Fader, Hardie & Lee
2005, equation 5; spend per order and its purchase frequency assumed
independent), both from the members' states as the stream builds them
(purchase visits, their spend), in weeks.
"""
from __future__ import annotations

import numpy as np
import torch

from stream.domain.event_time import DAY_MS
from stream.domain.member_value import ValueModel

from .evaluation.bgnbd import BGNBD

UNIT_DAYS = 7.0


def value_inputs(states, at_ms: int):
    """(x, t_x, T, mean spend per visit) per member with a purchase visit, in weeks."""
    rows = []
    unit = UNIT_DAYS * DAY_MS
    for s in states:
        if not s.purchase_visits:
            continue
        first = s.visits[0].ts if s.purchase_visits <= len(s.visits) else s.first_ts
        last = s.visits[-1].ts
        rows.append((s.purchase_visits - 1, (last - first) / unit, max(at_ms - first, last - first) / unit,
                     s.monetary / s.purchase_visits))
    return tuple(np.array(c, dtype=np.float64) for c in zip(*rows))


def fit_gamma_gamma(x: np.ndarray, mean_spend: np.ndarray) -> tuple[float, float, float]:
    """(p, q, gamma) on the members with x > 0 and a positive mean spend."""
    keep = (x > 0) & (mean_spend > 0)
    xs, ms = (torch.as_tensor(v[keep], dtype=torch.float64) for v in (x, mean_spend))
    params = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([params], lr=1.0, max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")
    lg = torch.lgamma

    def closure():
        opt.zero_grad()
        p, q, g = torch.exp(params)
        px = p * xs
        ll = (lg(px + q) - lg(px) - lg(q) + q * torch.log(g) + (px - 1) * torch.log(ms)
              + px * torch.log(xs) - (px + q) * torch.log(g + ms * xs))
        loss = -ll.mean()
        loss.backward()
        return loss
    for _ in range(5):
        opt.step(closure)
    p, q, g = (float(v) for v in torch.exp(params.detach()))
    return p, q, g


def fit_value_model(states, at_ms: int) -> ValueModel:
    x, t_x, T, mean_spend = value_inputs(states, at_ms)
    bg = BGNBD.fit(x, t_x, T)
    p, q, gamma = fit_gamma_gamma(x, mean_spend)
    return ValueModel(bg.r, bg.alpha, bg.a, bg.b, p, q, gamma, UNIT_DAYS)


def fit_on_events(events, end_ts: float, max_len: int = 50) -> ValueModel:
    """The value model of member events (models.datasets.MemberEvent) before `end_ts`
    (epoch seconds), their states built by the stream's own code."""
    from .evaluation.churn import stream_rows

    rows = stream_rows([e for e in events if e.ts < end_ts], end_ts, max_len)
    return fit_value_model(rows.states.values(), int(end_ts * 1000))
