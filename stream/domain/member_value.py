"""Member value: P(alive), expected purchases and expected spend over a horizon.

BG/NBD (Fader, Hardie & Lee 2005) for the purchase process and Gamma-Gamma
(Fader, Hardie & Lee 2005, "RFM and CLV") for the spend per purchase, both
fitted when the model is trained (models/member_value.py) and shipped with
it as `member_value.json` next to the weights. Served here in plain Python:
a value is computed per alert and per segment change, not per event.

A member's inputs come from their state, in the stream's own terms: a
purchase is a purchase visit (an order), x the visits after the first, t_x
the newest visit and T the time asked for, both from the first visit (the
first event when the first visit is older than the visits kept), and the
spend per visit their total spend over their visits.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from stream.domain.event_time import DAY_MS


@dataclass(frozen=True)
class ValueModel:
    r: float
    alpha: float
    a: float
    b: float
    p: float
    q: float
    gamma: float
    unit_days: float = 7.0  # the time unit of r/alpha and t_x, T

    # --- BG/NBD --------------------------------------------------------------------
    def p_alive(self, x: float, t_x: float, T: float) -> float:
        if x <= 0:
            return 1.0
        log_ratio = (math.log(self.a) - math.log(self.b + x - 1)
                     + (self.r + x) * (math.log(self.alpha + T) - math.log(self.alpha + t_x)))
        return 1.0 / (1.0 + math.exp(min(log_ratio, 700.0)))

    def expected_purchases(self, x: float, t_x: float, T: float, t: float) -> float:
        """E[purchases in (T, T + t]] (the paper's equation 10)."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        if abs(a - 1.0) < 1e-9:  # the closed form divides by a - 1: step off the pole
            a += 1e-6
        z = t / (alpha + T + t)
        body = 1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
        return (a + b + x - 1) / (a - 1) * body * self.p_alive(x, t_x, T)

    # --- Gamma-Gamma ---------------------------------------------------------------
    def spend_per_purchase(self, x: float, mean_spend: float) -> float:
        """E[spend of a purchase | x repeat purchases of mean value mean_spend]."""
        p, q, gamma = self.p, self.q, self.gamma
        if q <= 1.0:
            return mean_spend
        if x <= 0:
            return p * gamma / (q - 1)
        return (p * (gamma + x * mean_spend)) / (p * x + q - 1)

    # --- a member ------------------------------------------------------------------
    def value(self, first_visit_ms: int, last_visit_ms: int, visits: int, monetary: float,
              at_ms: int, horizon_days: float) -> dict:
        unit = self.unit_days * DAY_MS
        x = max(visits - 1, 0)
        t_x = max(last_visit_ms - first_visit_ms, 0) / unit
        T = max(at_ms - first_visit_ms, last_visit_ms - first_visit_ms, 0) / unit
        purchases = self.expected_purchases(x, t_x, T, horizon_days * DAY_MS / unit) if visits else 0.0
        per = self.spend_per_purchase(x, monetary / visits if visits else 0.0)
        return {"p_alive": round(self.p_alive(x, t_x, T) if visits else 0.0, 4),
                "expected_purchases": round(purchases, 4), "expected_spend": round(purchases * per, 2)}

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "ValueModel":
        return cls(**json.loads(Path(path).read_text()))


HORIZON_DAYS = 90.0  # of the served expected purchases and spend (the contract's *_90d fields)


def inputs_of(state) -> tuple[int, int, int, float]:
    """(first visit ms, newest visit ms, purchase visits, total spend) of a MemberState:
    what a value needs, cheap enough to record at every step."""
    visits = state.visits
    first = visits[0].ts if visits and state.purchase_visits <= len(visits) else state.first_ts
    last = visits[-1].ts if visits else state.first_ts
    return first, last, state.purchase_visits, state.monetary


def of_state(model: Optional[ValueModel], state, at_ms: int, horizon_days: float = HORIZON_DAYS) -> dict:
    """The value of a member (MemberState) at `at_ms`; None for each without a model."""
    return of_inputs(model, inputs_of(state), at_ms, horizon_days)


def of_inputs(model: Optional[ValueModel], inputs: tuple[int, int, int, float], at_ms: int,
              horizon_days: float = HORIZON_DAYS) -> dict:
    if model is None:
        return {"p_alive": None, "expected_purchases": None, "expected_spend": None}
    return model.value(*inputs, at_ms, horizon_days)


def served(model: Optional[ValueModel], inputs: tuple[int, int, int, float], at_ms: int) -> dict:
    """The contract's value fields (schemas.MemberValue, less recency/frequency/monetary)."""
    v = of_inputs(model, inputs, at_ms)
    return {"p_alive": v["p_alive"], "expected_purchases_90d": v["expected_purchases"],
            "expected_spend_90d": v["expected_spend"]}


def contract_value(model: Optional[ValueModel], inputs: tuple[int, int, int, float], last_ts: int,
                   at_ms: int) -> dict:
    """schemas.MemberValue's fields at `at_ms` (inputs: `inputs_of`; last_ts: the newest event)."""
    return {"recency_days": round((at_ms - last_ts) / DAY_MS, 3), "frequency": inputs[2],
            "monetary": round(inputs[3], 2), **served(model, inputs, at_ms)}


def load(path: Optional[Path]) -> Optional[ValueModel]:
    """The model at `path`; None when no path is set or no file is there (the value
    fields are then null). A file that is there but unreadable is an error."""
    if path is None or not Path(path).is_file():
        return None
    try:
        return ValueModel.load(path)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"member value model {path}: {exc}") from None


def hyp2f1(a: float, b: float, c: float, z: float, terms: int = 5000, tol: float = 1e-12) -> float:
    """Gauss hypergeometric series 2F1(a, b; c; z), 0 <= z < 1."""
    term = total = 1.0
    for j in range(terms):
        term *= (a + j) * (b + j) / ((c + j) * (j + 1)) * z
        total += term
        if abs(term) <= tol * abs(total):
            break
    return total
