"""Anomalies for fraud and abuse review: what a fraud team looks at first.

Orders (decided on purchase events, from the member's recent orders):
- PURCHASE_VELOCITY: many orders within an hour;
- NEW_MEMBER_HIGH_VALUE: a member first seen hours ago places several orders
  within minutes, each in the shop's top spend (a quantile of the order spend
  seen in the stream, `OrderSpend`);
- SPEND_SPIKE: an order far above the member's median order.
They depend on the log alone. At most one order anomaly per member within the
minimum interval of event time: the order that raises one is flagged (in the
member's persisted state), and no other raises one within the interval.

Sequences (decided on every event, against the model):
- UNLIKELY_SEQUENCE: the member's newest events all fell outside the model's
  top-K at their last scoring, a run whose chance under the member's own hit
  rate is tiny. It rests on when the member was scored (in memory, not in the
  changelog), so a replay may raise it at another event, or not at all.

An anomaly's id names its kind, the member and the event that raised it (its
id and the member's event count after it), so one sent again after a restart
has the id it had.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from statistics import median
from typing import Iterable, Optional

from stream.domain.event_time import rfc3339
from stream.domain.member_state import MemberState, Surprise, Visit
from stream.domain.message_id import message_id
from stream.contract.schemas import Anomaly, Reason

HOUR_MS = 3_600_000
SPIKE_HISTORY = 4
UNLIKELY_MIN_RUN = 5


@dataclass(frozen=True)
class Rules:
    burst_orders: int = 4
    new_member_ms: int = 24 * HOUR_MS
    new_member_orders: int = 3
    new_member_window_ms: int = 30 * 60_000
    high_value_quantile: float = 0.9
    high_value_min_orders: int = 200
    spike_factor: float = 10.0
    unlikely_chance: float = 1e-3
    unlikely_history: int = 20
    min_interval_ms: int = HOUR_MS

    @classmethod
    def of(cls, s) -> "Rules":
        """From the settings (stream/settings.py, anomaly_*)."""
        return cls(s.anomaly_burst_orders, int(s.anomaly_new_member_hours * HOUR_MS), s.anomaly_new_member_orders,
                   int(s.anomaly_new_member_minutes * 60_000), s.anomaly_high_value_quantile,
                   s.anomaly_high_value_min_orders, s.anomaly_spike_factor, s.anomaly_unlikely_chance,
                   s.anomaly_unlikely_history, int(s.anomaly_min_interval_s * 1000))


RULES = Rules()


class OrderSpend:
    """The shop's order spend as seen in the stream: a histogram in bins of 2^(1/8)
    (9 % wide), so a quantile is known to within a bin. An order counts once closed
    (the member's next order started), so its spend is final."""
    BINS_PER_OCTAVE = 8

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.n = 0
        self._known: dict[float, tuple[int, float]] = {}  # q -> (n, its quantile): asked per purchase

    def observe(self, spend: float) -> None:
        if spend > 0:
            self.counts[math.floor(math.log2(spend) * self.BINS_PER_OCTAVE)] += 1
            self.n += 1

    def observe_states(self, states: Iterable[MemberState]) -> None:
        """The closed orders of members recovered from the changelog."""
        for state in states:
            for visit in state.visits[:-1]:
                self.observe(visit.spend)

    def quantile(self, q: float, min_orders: int = 1) -> Optional[float]:
        """The spend below which a share q of orders fall (a bin's upper edge), or None
        before `min_orders` orders were seen."""
        if self.n < max(1, min_orders):
            return None
        known = self._known.get(q)
        if known is not None and known[0] == self.n:  # no order counted since
            return known[1]
        bins = sorted(self.counts)
        cumulative, total = [], 0
        for b in bins:
            total += self.counts[b]
            cumulative.append(total)
        at = bins[min(len(bins) - 1, bisect_left(cumulative, q * self.n))]
        value = 2.0 ** ((at + 1) / self.BINS_PER_OCTAVE)
        self._known[q] = (self.n, value)
        return value


def anomaly_id(member_id: str, n_events: int, event_id: str, kind: str = "anomaly") -> str:
    return message_id(kind, member_id, n_events, event_id)


def _quiet(state: MemberState, visit: Visit, interval_ms: int) -> bool:
    """No order of the member raised an anomaly within the interval before this one."""
    return not any(v.flagged and v is not visit and 0 <= visit.ts - v.ts < interval_ms for v in state.visits)


def on_purchase(state: MemberState, visit: Visit, started: bool, event_id: str, rules: Rules = RULES,
                high_value: Optional[float] = None) -> Optional[Anomaly]:
    """An order anomaly after a purchase event that started or added to `visit`;
    `high_value` the shop's high order spend (None: not known yet)."""
    if visit.flagged or not _quiet(state, visit, rules.min_interval_ms):
        return None
    reasons, ids, score = [], [], 0.0
    if started:
        burst = [v for v in state.visits if visit.ts - v.ts < HOUR_MS]
        if len(burst) >= rules.burst_orders:
            reasons.append(Reason(code="PURCHASE_VELOCITY", text=f"{len(burst)} orders within one hour"))
            ids += [v.event_id for v in burst]
            score = max(score, min(1.0, len(burst) / (2 * rules.burst_orders)))
    if high_value is not None and visit.ts - state.first_ts <= rules.new_member_ms:
        high = [v for v in state.visits if visit.ts - v.ts <= rules.new_member_window_ms and v.spend >= high_value]
        if len(high) >= rules.new_member_orders and visit in high:
            age_h = (visit.ts - state.first_ts) / HOUR_MS
            reasons.append(Reason(code="NEW_MEMBER_HIGH_VALUE", text=(
                f"{len(high)} orders of {high_value:.2f} or more (the shop's top "
                f"{100 * (1 - rules.high_value_quantile):.0f} %) within "
                f"{rules.new_member_window_ms // 60_000} minutes, from a member first seen {age_h:.1f} h before")))
            ids += [v.event_id for v in high]
            total = sum(v.spend for v in high)
            score = max(score, min(1.0, 0.5 * len(high) / rules.new_member_orders
                                   + 0.1 * math.log2(total / (len(high) * high_value) + 1)))
    history = [v.spend for v in state.visits[:-1] if v.spend > 0]
    if len(history) >= SPIKE_HISTORY:
        typical = median(history)
        if visit.spend > rules.spike_factor * typical:
            reasons.append(Reason(code="SPEND_SPIKE", text=f"order of {visit.spend:.2f} vs a typical {typical:.2f}"))
            ids += [visit.event_id] + ([event_id] if event_id != visit.event_id else [])
            score = max(score, min(1.0, visit.spend / typical / (5 * rules.spike_factor)))
    if not reasons:
        return None
    visit.flagged = True
    return Anomaly(anomaly_id=anomaly_id(state.member_id, state.n_events, event_id),
                   member_id=state.member_id, anomaly_score=round(score, 4), reasons=reasons,
                   event_ids=list(dict.fromkeys(ids)), event_time=rfc3339(state.last_ts))


def predicted(state: MemberState, items: Iterable[str]) -> None:
    """The model's top-K for the member's next events (their scoring answered)."""
    if state.surprise is None:
        state.surprise = Surprise()
    state.surprise.predicted = frozenset(items)


def on_event(state: MemberState, item: str, event_id: str, rules: Rules = RULES) -> Optional[Anomaly]:
    """The member's newest event against the model's last prediction: an anomaly when
    the run of misses it ends has a chance of at most `unlikely_chance` under the
    member's own hit rate (Laplace-smoothed), raised once per run."""
    s = state.surprise
    if s is None or not s.predicted:
        return None
    hit = item in s.predicted
    anomaly = None
    if hit:
        s.run, s.raised_run = 0, False
    else:
        s.run += 1
    if not hit and s.trials >= rules.unlikely_history:
        rate = (s.hits + 1) / (s.trials + 2)
        chance = (1.0 - rate) ** s.run
        if (s.run >= UNLIKELY_MIN_RUN and chance <= rules.unlikely_chance
                and not s.raised_run and state.last_ts - s.raised_ts >= rules.min_interval_ms):
            s.raised_ts, s.raised_run = state.last_ts, True
            anomaly = Anomaly(
                anomaly_id=anomaly_id(state.member_id, state.n_events, event_id, "unlikely-sequence"),
                member_id=state.member_id, anomaly_score=round(min(1.0, -math.log10(chance) / 6), 4),
                reasons=[Reason(code="UNLIKELY_SEQUENCE", text=(
                    f"the last {s.run} events were all outside the model's top {len(s.predicted)}, which held "
                    f"{100 * rate:.0f} % of this member's {s.trials} events before (chance {chance:.1e})"))],
                event_ids=[event_id], event_time=rfc3339(state.last_ts))
    s.trials += 1
    s.hits += hit
    return anomaly
