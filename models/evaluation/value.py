"""Member value at the cutoff against what happened in the holdout.

The served model (models/member_value.py: BG/NBD + Gamma-Gamma on purchase
visits, fitted on the calibration data) side by side with BG/NBD on purchase
days with Gamma-Gamma (the classic inputs, as in the churn table) and the
member's historical rate (orders and spend per day so far, times the horizon).
Purchases are orders (invoices); MAE of expected purchases, Spearman rank
correlation of expected spend with the spend that came.
"""
from __future__ import annotations

import numpy as np

from stream.domain.member_value import ValueModel, of_state

from ..datasets import by_member
from ..encoding import DAY
from ..member_value import fit_gamma_gamma, fit_value_model
from .bgnbd import BGNBD

WEEK = 7 * DAY


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    def ranks(v):
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=np.float64)
        for value in np.unique(v):  # ties: their mean rank
            tied = v == value
            if tied.sum() > 1:
                r[tied] = r[tied].mean()
        return r
    ra, rb = ranks(np.asarray(a, float)), ranks(np.asarray(b, float))
    return float(np.corrcoef(ra, rb)[0, 1])


def evaluate_value(events, cutoff_ts: float, holdout_end_ts: float, rows) -> dict:
    histories = by_member(events)
    members = rows.members
    horizon_days = (holdout_end_ts - cutoff_ts) / DAY
    orders, spend = [], []
    for m in members:
        later = [e for e in histories[m] if cutoff_ts <= e.ts < holdout_end_ts]
        orders.append(len({e.session_id or e.ts for e in later}))
        spend.append(sum((e.price or 0.0) * e.quantity for e in later))
    orders, spend = np.array(orders, float), np.array(spend)
    at_ms = int(cutoff_ts * 1000)
    served = fit_value_model(rows.states.values(), at_ms)
    values = [of_state(served, rows.states[m], at_ms, horizon_days) for m in members]
    predicted = {"served: BG/NBD + Gamma-Gamma on orders": (
        np.array([v["expected_purchases"] for v in values]), np.array([v["expected_spend"] for v in values]))}

    # Classic inputs: purchase days, weeks from the first to the end of the last calibration day.
    x, t_x, T, mean = [], [], [], []
    for m in members:
        before = [e for e in histories[m] if e.ts < cutoff_ts]
        days = sorted({int(e.ts // DAY) for e in before})
        x.append(len(days) - 1)
        t_x.append((days[-1] - days[0]) * DAY / WEEK)
        T.append((cutoff_ts / DAY - 1 - days[0]) * DAY / WEEK)
        mean.append(sum((e.price or 0.0) * e.quantity for e in before) / len(days))
    x, t_x, T, mean = (np.array(v, float) for v in (x, t_x, T, mean))
    bg = BGNBD.fit(x, t_x, T)
    p, q, g = fit_gamma_gamma(x, mean)
    classic = ValueModel(bg.r, bg.alpha, bg.a, bg.b, p, q, g)
    t = horizon_days * DAY / WEEK
    e_days = np.array([classic.expected_purchases(*v, t) for v in zip(x, t_x, T)])
    # Purchase days stand for orders here (most members order once a day at most).
    predicted["BG/NBD + Gamma-Gamma on purchase days"] = (
        e_days, e_days * np.array([classic.spend_per_purchase(a, b) for a, b in zip(x, mean)]))

    age_days = np.array([max((cutoff_ts * 1000 - s.first_ts) / 86_400_000, 1.0)
                         for s in (rows.states[m] for m in members)])
    visits = np.array([rows.states[m].purchase_visits for m in members], float)
    monetary = np.array([rows.states[m].monetary for m in members])
    predicted["historical rate (orders, spend per day so far)"] = (
        visits / age_days * horizon_days, monetary / age_days * horizon_days)
    table = [{"model": name, "purchases mae": float(np.mean(np.abs(e - orders))),
              "purchases bias": float(np.mean(e - orders)), "spend spearman": spearman(s, spend),
              "spend mae": float(np.mean(np.abs(s - spend)))}
             for name, (e, s) in predicted.items()]
    return {"horizon_days": horizon_days, "members": len(members), "mean orders": float(orders.mean()),
            "mean spend": float(spend.mean()), "table": table, "served model": served.__dict__}
