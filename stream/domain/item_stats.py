"""Item statistics kept by the stream itself: trending popularity and co-occurrence.

Counted from the events as they are applied, so an item that first appears
after the model was trained is trending and "bought together" as soon as
members act on it, without retraining (the model cannot recommend what its
vocabulary lacks).

* Popularity decays with event time: an event of weight w at time t adds
  w * 2^((t - ref) / half_life) to its item, so that the score at any time T
  is proportional to the decayed count sum w * 2^(-(T - t) / half_life). The
  reference moves forward (every score rescaled) before the powers overflow.
* Co-occurrence: an event of item b pairs it with the member's up to
  `window` previous events within `window_s` before it, weighted by the
  event's type and 1 / distance (nearest counts most), in both directions.
  Each item keeps its `kept` strongest neighbours (pruned at twice that).

Per worker: each counts the events of the partitions it owns (a random
share of the members), and starts empty; after a restart it counts again
from the members' kept sequences (`rebuild`). docs/DESIGN.md section 8, "Recommendation lists".
"""
from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from stream.contract.schemas import EVENT_TYPES
from stream.domain.event_time import DAY_MS

# Weight of an event of each type (contract order) for popularity and co-occurrence:
# a purchase says most about an item, a view least; a removal says nothing.
TYPE_WEIGHTS = {"view": 0.2, "click": 0.2, "add_to_cart": 0.5, "remove_from_cart": 0.0, "purchase": 1.0}
TYPE_WEIGHT_BY_CODE = [0.0] + [TYPE_WEIGHTS.get(t, 0.2) for t in EVENT_TYPES]
TRENDING_REFRESH_EVENTS = 1000
_MAX_EXPONENT = 64.0  # rescale before 2^exponent grows past this


@dataclass(frozen=True)
class ItemStatsConfig:
    half_life_days: float = 7.0
    window: int = 10
    window_s: float = 86_400.0
    kept: int = 100


class ItemStats:
    def __init__(self, config: ItemStatsConfig = ItemStatsConfig()):
        self.c = config
        self.half_life_ms = config.half_life_days * DAY_MS
        self.ref_ms: Optional[int] = None
        self.popularity: dict[str, float] = {}
        self.pairs: dict[str, dict[str, float]] = {}
        self.totals: dict[str, float] = {}  # each item's summed pair weight
        self.categories: dict[str, str] = {}
        self.events = 0
        self._top: Optional[list[tuple[str, float]]] = None
        self._top_at = 0  # `events` when the trending list was ranked

    def __len__(self) -> int:
        return len(self.popularity)

    # --- counting ---------------------------------------------------------------------
    def observe(self, items: Sequence[str], types: Sequence[int], times: Sequence[int], at: int,
                category: Optional[str] = None) -> None:
        """Count the event at position `at` of a member's sequence (items, type codes and
        times, oldest first) against the events before it."""
        weight = TYPE_WEIGHT_BY_CODE[types[at]]
        item, ts = items[at], times[at]
        if category is not None:
            self.categories[item] = category
        self.events += 1
        if weight <= 0.0:
            return
        self._count(item, ts, weight)
        earliest, seen = ts - self.c.window_s * 1000, {item}
        for distance, j in enumerate(range(at - 1, max(-1, at - 1 - self.c.window), -1), 1):
            if times[j] < earliest:
                break
            other = items[j]
            if other in seen:
                continue
            seen.add(other)
            w = weight * TYPE_WEIGHT_BY_CODE[types[j]] / distance
            if w > 0.0:
                self._pair(item, other, w)
                self._pair(other, item, w)

    def observe_newest(self, state, ts: int, category: Optional[str] = None) -> None:
        """Count the event just applied to `state` at event time `ts` (the newest, or
        in its place in time if it came late; nothing if it fell out of the kept
        sequence at once)."""
        at = bisect.bisect_right(state.times, ts) - 1
        if at >= 0 and state.times[at] == ts:
            self.observe(state.items, state.types, state.times, at, category)

    def rebuild(self, sequences: Iterable[tuple[Sequence[str], Sequence[int], Sequence[int]]]) -> None:
        """Count every event of the given member sequences (a restart's recovered states)."""
        for items, types, times in sequences:
            for at in range(len(items)):
                self.observe(items, types, times, at)

    def _count(self, item: str, ts: int, weight: float) -> None:
        if self.ref_ms is None:
            self.ref_ms = ts
        exponent = (ts - self.ref_ms) / self.half_life_ms
        if exponent > _MAX_EXPONENT:  # move the reference up to ts: every value shrinks
            factor = 2.0 ** -exponent
            self.popularity = {i: v * factor for i, v in self.popularity.items()}
            self.ref_ms, exponent = ts, 0.0
        self.popularity[item] = self.popularity.get(item, 0.0) + weight * 2.0 ** exponent

    def _pair(self, a: str, b: str, w: float) -> None:
        row = self.pairs.get(a)
        if row is None:
            row = self.pairs[a] = {}
        row[b] = row.get(b, 0.0) + w
        self.totals[a] = self.totals.get(a, 0.0) + w
        if len(row) > 2 * self.c.kept:
            self.pairs[a] = dict(heapq.nlargest(self.c.kept, row.items(), key=lambda p: (p[1], p[0])))

    # --- reading ----------------------------------------------------------------------
    def knows(self, item: str) -> bool:
        return item in self.popularity or item in self.categories

    def trending(self, n: int) -> list[tuple[str, float]]:
        """The n most popular items now (decayed counts; ties by item id), best first.
        The ranking is the same at any time T (decay multiplies every item alike); it is
        ranked again after TRENDING_REFRESH_EVENTS events, not for every member scored."""
        top = self._top
        if top is None or self.events - self._top_at >= TRENDING_REFRESH_EVENTS or len(top) < min(
                n, len(self.popularity)):
            top = self._top = heapq.nlargest(max(n, 200), self.popularity.items(), key=lambda p: (p[1], p[0]))
            self._top_at = self.events
        return top[:n]

    def related(self, recent: Sequence[str], limit: int = 10) -> dict[str, float]:
        """Items bought or viewed with the member's `limit` newest distinct items
        (`recent`, newest last), each neighbour list normalised to sum 1 and the newer
        items weighted more (1 / rank)."""
        out: dict[str, float] = {}
        rank = 0
        for item in dict.fromkeys(reversed(recent)):
            if rank == limit:
                break
            rank += 1
            row, total = self.pairs.get(item), self.totals.get(item)
            if not row or not total:
                continue
            w = 1.0 / (rank * total)
            for other, v in row.items():
                out[other] = out.get(other, 0.0) + w * v
        return out
