"""Recommendation updates: published when the member's top-K item ids change.

Which of a member's states get scored depends on load (DESIGN.md section 8), so
an update's id names the state it answers (the member's event count and newest
event id), the model version and whether it is the fallback: an update sent
again after a restart has the id it had, and equal ids are answers to the same
member state by the same model (or both by the fallback, whose popular items are
counted since the worker started and may differ).
"""
from __future__ import annotations

import heapq
import weakref
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from stream.domain.event_time import DAY_MS, rfc3339
from stream.domain.item_stats import TYPE_WEIGHT_BY_CODE, ItemStats
from stream.domain.member_state import PURCHASE, MemberState
from stream.domain.message_id import message_id
from stream.contract.schemas import SCHEMA_VERSION


def update_id(member_id: str, n_events: int, last_event_id: str, model_version: str, fallback: bool) -> str:
    return message_id("recommendation", member_id, n_events, last_event_id, model_version, fallback)


def recommendation_update(state: MemberState, items: Sequence[str], scores: Sequence[float], k: int,
                          model_version: str, fallback: bool,
                          reasons: Optional[Sequence[str]] = None) -> Optional[dict]:
    """The `crm.recommendations` message as a dict in the field order of
    schemas.RecommendationUpdate (built directly: one per scored member, and the
    model's validation and dump cost four times the rest; tests/unit/domain/test_policies.py
    checks the dict against the model)."""
    top = [(item, round(float(score), 6)) for item, score in zip(items[:k], scores[:k])]
    why = list(reasons[:k]) if reasons is not None else [None] * len(top)
    if [i for i, _ in top] == [i for i, _ in state.recommendations] and fallback == state.recommendations_fallback:
        return None
    state.recommendations, state.recommendations_fallback = top, fallback
    return {"schema_version": SCHEMA_VERSION,
            "update_id": update_id(state.member_id, state.n_events, state.last_event_id, model_version, fallback),
            "member_id": state.member_id,
            "items": [{"item_id": i, "score": s, "rank": r, "reason": y}
                      for r, ((i, s), y) in enumerate(zip(top, why), 1)],
            "model_version": model_version, "fallback": fallback, "based_on": state.last_event_id,
            "event_time": rfc3339(state.last_ts)}


@dataclass(frozen=True)
class Blend:
    """How a member's list is made (settings `recommend_*`, docs/DESIGN.md section 8).

    Four signals, each scaled to [0, 1] by its best candidate for the member, summed
    with these weights: `model` (the transformer's next-item probabilities), `repeat`
    (the member's own events of the item, purchases most, halved every
    `repeat_half_life_days`: re-buy cycles), `related` (co-occurrence with the member's
    newest items, counted in the stream) and `trending` (decayed popularity).
    """
    model: float = 1.0
    repeat: float = 1.0
    related: float = 1.0
    trending: float = 0.1
    repeat_half_life_days: float = 60.0
    related_items: int = 10
    # At most this share of the list is items the member had (repeat), the rest new to
    # them (explore), each part ranked by the blend; what one part lacks the other fills.
    # 0: items new to the member only (a "discover" list).
    repeat_share: float = 0.5
    cold_start_events: int = 3  # fewer events: no model (fallback), related + trending
    # Business filters.
    exclude_bought_within_days: float = 0.0  # 0: bought items stay in (replenishment)
    catalogue: Optional[frozenset] = None  # only these items (None: any)
    include_categories: frozenset = frozenset()  # only items of these categories (empty: any)
    exclude_categories: frozenset = frozenset()

    @property
    def filters(self) -> bool:
        """Whether any item filter is set (without one, `allows` is true of every item)."""
        return self.catalogue is not None or bool(self.include_categories or self.exclude_categories)

    def allows(self, item: str, stats: ItemStats) -> bool:
        if self.catalogue is not None and item not in self.catalogue:
            return False
        if self.include_categories or self.exclude_categories:
            category = stats.categories.get(item)
            if self.include_categories and category not in self.include_categories:
                return False
            if category in self.exclude_categories:
                return False
        return True


REASONS = {"model": "SEQUENCE_MODEL", "repeat": "BOUGHT_BEFORE", "related": "BOUGHT_TOGETHER",
           "trending": "TRENDING"}
_TRENDING_CANDIDATES = 100
_NONE = np.empty(0, np.int64)


def cold(state: MemberState, blend: Blend) -> bool:
    """Too few events for the model: the list is made without it (`fallback`)."""
    return state.n_events < blend.cold_start_events


def _scaled(scores: dict[str, float]) -> dict[str, float]:
    best = max(scores.values(), default=0.0)
    return {i: v / best for i, v in scores.items()} if best > 0 else {}


def repeat_scores(state: MemberState, half_life_days: float) -> dict[str, float]:
    """The member's own events of each item in the kept sequence, by type weight,
    halved every `half_life_days` before their newest event."""
    out: dict[str, float] = {}
    if not state.times:
        return out
    newest, half_life = state.last_ts, half_life_days * DAY_MS
    for item, code, ts in zip(state.items, state.types, state.times):
        w = TYPE_WEIGHT_BY_CODE[code] * 2.0 ** (-(newest - ts) / half_life)
        if w > 0.0:
            out[item] = out.get(item, 0.0) + w
    return out


def blend_items(state: MemberState, model_items: Sequence[str], model_scores: Sequence[float],
                stats: ItemStats, blend: Blend, k: int) -> list[tuple[str, float, str]]:
    """The member's top k: (item id, score in [0, 1], reason code), best first.

    Without model answers (none given: Triton unavailable, or a cold start) the
    other signals rank alone. Items the filters refuse are never candidates; the
    trending list fills up what the member's own signals leave (a signal of weight 0
    gives no candidates: the list may then be shorter than k).
    """
    banned = _bought_recently(state, blend.exclude_bought_within_days)
    trend = _trending(stats, blend.trending)
    signals = {
        "model": (blend.model, _scaled(dict(zip(model_items, map(float, model_scores))))),
        "repeat": (blend.repeat, _scaled(repeat_scores(state, blend.repeat_half_life_days))),
        "related": (blend.related, {}),
        "trending": (blend.trending, trend.scaled),
    }
    owned = signals["repeat"][1]
    # Without a filter or a recent purchase to exclude, every item passes: no call per item.
    passes = (lambda i: i not in banned and blend.allows(i, stats)) if banned or blend.filters else None
    if blend.related > 0.0:
        others = owned.keys() | signals["model"][1].keys() if blend.model > 0.0 else owned.keys()
        signals["related"] = (blend.related, _related(state, stats, blend, k, stats.numbers_of(others), passes,
                                                      *trend.numbered(stats)))
    # Each item's weighted signals summed in signal order, trending last.
    total: dict[str, float] = {}
    for name in ("model", "repeat", "related"):
        weight, scores = signals[name]
        if weight > 0.0:
            for item, v in scores.items():
                total[item] = total.get(item, 0.0) + weight * v
    parts = trend.parts
    if parts:
        for item, v in total.items():
            part = parts.get(item)
            if part is not None:
                total[item] = v + part
    norm = sum(max(w, 0.0) for w, _ in signals.values()) or 1.0
    own, new = [], []  # (rank key, item): best first is smallest, ties by item id
    for i in total:
        if passes is None or passes(i):
            (own if i in owned else new).append((-total[i], i))
    if parts:
        # Items only trending rank by their part alone, the same for every member: the
        # k best new to the member that pass can fill the list, no other (every item
        # the member had is also in `total` while the repeat signal counts).
        every_owned_counted, taken = blend.repeat > 0.0, 0
        for i in trend.ranked:
            if i in total or (passes is not None and not passes(i)):
                continue
            if i in owned:
                own.append((-parts[i], i))
            elif taken < k:
                new.append((-parts[i], i))
                taken += 1
            elif every_owned_counted:
                break
            else:
                continue
            total[i] = parts[i]
    n_own = max(round(k * blend.repeat_share), k - len(new)) if blend.repeat_share > 0 else 0
    own = heapq.nsmallest(n_own, own) if n_own else []
    chosen = sorted(own + heapq.nsmallest(k - len(own), new))
    return [(i, round(total[i] / norm, 6), REASONS[_strongest(i, signals)]) for _, i in chosen]


class _Trending:
    """The trending signal of one ranking of the item statistics at one weight: scaled
    to the best 1, its weighted parts ({} at weight 0), the items of the parts best
    first (ties by item id), and the numbers of those paired so far with their parts
    (looked up again while some are missing; an eviction, whose items' numbers are
    given again after it, also ranks the items again, so numbers hold for the ranking)."""
    __slots__ = ("key", "scaled", "parts", "ranked", "_numbers", "_values", "_unnumbered")

    def __init__(self, key: tuple, scaled: dict[str, float], parts: dict[str, float], stats: ItemStats):
        self.key, self.scaled, self.parts = key, scaled, parts
        self.ranked = sorted(parts, key=lambda i: (-parts[i], i))
        self._number(stats)

    def _number(self, stats: ItemStats) -> None:
        ids = stats.ids
        self._numbers = np.array([ids[i] for i in self.parts if i in ids], np.int64)
        self._values = np.array([v for i, v in self.parts.items() if i in ids], np.float64)
        self._unnumbered = [i for i in self.parts if i not in ids]

    def numbered(self, stats: ItemStats) -> tuple[np.ndarray, np.ndarray]:
        """(item numbers, their weighted parts) of the trending items paired so far."""
        if self._unnumbered and any(i in stats.ids for i in self._unnumbered):
            self._number(stats)
        return self._numbers, self._values


_trending_memo: "weakref.WeakKeyDictionary[ItemStats, _Trending]" = weakref.WeakKeyDictionary()


def _trending(stats: ItemStats, weight: float) -> _Trending:
    """The trending signal, made once per ranking of `stats` (a ranking holds for
    TRENDING_REFRESH_EVENTS events) and weight."""
    top = stats.trending(_TRENDING_CANDIDATES)
    memo = _trending_memo.get(stats)
    if memo is None or memo.key != (stats.rankings, weight):
        scaled = _scaled(dict(top))
        parts = {i: weight * v for i, v in scaled.items()} if weight > 0.0 else {}
        memo = _trending_memo[stats] = _Trending((stats.rankings, weight), scaled, parts, stats)
    return memo


def _strongest(item: str, signals: dict) -> str:
    """The signal that gave the item the largest part of its score (the first of equals)."""
    best, name = -1.0, ""
    for signal, (weight, scores) in signals.items():
        if weight > 0.0 and item in scores and weight * scores[item] > best:
            best, name = weight * scores[item], signal
    return name


def _related(state: MemberState, stats: ItemStats, blend: Blend, k: int, known: np.ndarray,
             passes: Optional[Callable[[str], bool]], trending: np.ndarray = _NONE,
             trending_parts: np.ndarray = _NONE) -> dict[str, float]:
    """The related scores (scaled to the best 1) that can reach a top k: those of the
    items another signal scores for the member or the member had (`known`, their item
    numbers; one may come twice); of the trending items (`trending`, their numbers, and
    `trending_parts`, their weighted trending parts) that are not known, the k best by
    both parts; and of the items only related, the k best. Of those that `passes` the
    filters (None: every item), ties by item id, as the blend ranks. The items of each
    of the last two groups rank by those parts alone and are new to the member, so
    none past its k best can reach the list: the list is the one all of them would
    give (tests/unit/domain/test_policies.py holds it to that). Summed and ranked over
    numpy arrays: a member's related items number up to some thousands, the rest of
    the blend a few hundred."""
    among = np.concatenate((known, trending)) if len(trending) else known
    numbers, raw, raw_among = stats.related_arrays(state.items, blend.related_items, among)
    if not len(raw):
        return {}
    best = raw.max()
    if not best > 0.0:
        return {}
    scaled, names = raw / best, stats.names
    if len(scaled) <= k:
        return dict(zip([names[n] for n in numbers.tolist()], scaled.tolist()))
    raw_known = raw_among[:len(known)]
    related = raw_known > 0.0  # the known items' scores read once each (numbers may repeat)
    kept = dict(zip([names[n] for n in known[related].tolist()], (raw_known[related] / best).tolist()))
    if len(trending):
        raw_trending = raw_among[len(known):]
        alone = (raw_trending > 0.0) & ~stats.marked(trending, known)
        trending_scaled = raw_trending[alone] / best
        kept.update(_k_best(blend.related * trending_scaled + trending_parts[alone], trending[alone],
                            trending_scaled, k, names, passes))
    outside = ~stats.marked(numbers, among)
    rest, rest_scaled = numbers[outside], scaled[outside]
    once = stats.once(rest)  # an item related to several of the member's: its one score once
    rest, rest_scaled = rest[once], rest_scaled[once]
    kept.update(_k_best(blend.related * rest_scaled, rest, rest_scaled, k, names, passes))
    return kept


def _k_best(totals: np.ndarray, numbers: np.ndarray, scaled: np.ndarray, k: int, names: list[str],
            passes: Optional[Callable[[str], bool]]) -> dict[str, float]:
    """{item id: scaled} of the k items of the greatest `totals` (ties by item id) that
    `passes` (None: every item); the numbers come once each."""
    n = k if passes is None else 2 * k  # with filters, room for some they refuse
    while True:
        if n < len(totals):  # the n best and whatever ties the n-th
            top = np.flatnonzero(totals >= np.partition(totals, len(totals) - n)[len(totals) - n])
        else:
            top = np.arange(len(totals))
        ranked = sorted(zip((-totals[top]).tolist(), [names[r] for r in numbers[top].tolist()], top.tolist()))
        passing = [(i, at) for _, i, at in ranked if passes is None or passes(i)]
        if len(passing) >= k or n >= len(totals):
            break
        n *= 4
    return {i: float(scaled[at]) for i, at in passing[:k]}


def _bought_recently(state: MemberState, days: float) -> set[str]:
    if days <= 0 or not state.times:
        return set()
    since = state.last_ts - days * DAY_MS
    return {i for i, code, ts in zip(state.items, state.types, state.times) if code == PURCHASE and ts >= since}
