"""What `/health` answers: a status, its HTTP code and the reasons, from what
the worker knows. Truthful first: 503 whenever events are not being processed
to their outputs, `degraded` whenever a part the outputs depend on is down.

  starting  503  partitions not assigned, the table not recovered, a
                 rebalance, or the batcher not in its group yet
  degraded  503  batches are held for their checkpoint scores (Triton is
                 down and the agent stops behind them), or the broker is
                 unreachable
  degraded  200  Triton is down, and nothing waits on it yet: events are
                 applied, recommendations fall back to popular items
  ok        200  otherwise
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from stream.scoring.breaker import CLOSED, Breaker


@dataclass
class Health:
    status: str
    code: int
    reasons: list[str] = field(default_factory=list)


def assess(*, ready: bool, scoring: Breaker, held: int, held_s: float,
           broker_down_s: Optional[float] = None) -> Health:
    """`ready`: the worker takes input (see above); `held`, `held_s`: batches held for
    their checkpoint scores, and the longest hold; `broker_down_s`: seconds the
    broker has not answered (None: it answers)."""
    reasons = []
    if broker_down_s is not None:
        reasons.append(f"broker unreachable for {broker_down_s:.0f} s")
    if scoring.state != CLOSED:
        reasons.append(f"triton unreachable for {scoring.down_for():.0f} s ({scoring.reason}); "
                       "recommendations fall back to popular items")
    if held:
        reasons.append(f"{held} batches wait {held_s:.0f} s for their inactivity checkpoints' scores; "
                       "input waits behind them")
    if not ready:
        return Health("starting", 503, reasons)
    if reasons:
        return Health("degraded", 503 if held or broker_down_s is not None else 200, reasons)
    return Health("ok", 200)
