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
  Items are numbered as they are first paired (`ids`, `names`), so a member's
  related items are summed over numpy arrays of those numbers (`related_arrays`:
  up to ten rows of up to 200 neighbours for every list made).
* Bounded: once more than `max_items` items (and a quarter) are counted
  or categorised, only the `max_items` most popular stay (`_evict`): the others lose
  their popularity, category, number and row at once, and their place in the rows of
  those kept as those rows are swept, a few for every event counted after it, done
  within half the quarter's events (an evicted neighbour is skipped until then; a row
  that would be pruned loses its evicted neighbours first), so the eviction itself
  holds the worker for a ranking of the items, not a pass over every row. The numbers
  of evicted items are given again once no row holds them. Memory follows
  `max_items`, not the items ever seen. An item evicted counts again from nothing once
  an event of it comes; until then it is paired with nothing (only counted items are).

Per worker: each counts the events of the partitions it owns (a random
share of the members), and starts empty; after a restart it counts again
from the members' kept sequences (`rebuild`). docs/DESIGN.md section 8, "Recommendation lists".
"""
from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass
from itertools import repeat
from typing import Collection, Iterable, Optional, Sequence

import numpy as np

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
    max_items: int = 100_000


class ItemStats:
    def __init__(self, config: ItemStatsConfig = ItemStatsConfig()):
        self.c = config
        self._prune_at = 2 * config.kept
        self._evict_at = config.max_items + max(1, config.max_items // 4)
        self.half_life_ms = config.half_life_days * DAY_MS
        self.ref_ms: Optional[int] = None
        self.popularity: dict[str, float] = {}
        # Co-occurrence by item number: number -> its row of neighbours.
        self.ids: dict[str, int] = {}
        self.names: list[str] = []
        self.pairs: dict[int, _Row] = {}
        self._sums = np.zeros(0)  # scratch of related_arrays, zero between calls
        self._marks = np.zeros(0, bool)  # scratch of marked, false between calls
        self._places = np.zeros(0, np.int64)  # scratch of once, any values between calls
        # The last eviction's sweep (_evict): the numbers evicted, true in _dead until given
        # again; the rows (by number) that may still hold them; how many to sweep per event.
        self._held: list[int] = []
        self._dead = np.zeros(0, bool)
        self._sweep: list[int] = []
        self._sweep_rows = 0
        self._dropped: list[_Row] = []  # the evicted items' rows, to free
        self._free: list[int] = []  # numbers no row holds, to give again
        self.categories: dict[str, str] = {}
        self.events = 0
        self._top: Optional[list[tuple[str, float]]] = None
        self._top_at = 0  # `events` when the trending list was ranked
        self.rankings = 0  # trending lists ranked so far: what is derived from one holds until the next
        self.evictions = 0

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
        if self._sweep:
            self._swept(self._sweep_rows)
        if weight <= 0.0:
            return
        self._count(item, ts, weight)
        earliest, seen, a, row_a = ts - self.c.window_s * 1000, {item}, -1, None
        ids, add, counted, evicted = self.ids, self._add, self.popularity, self.evictions > 0
        for distance, j in enumerate(range(at - 1, max(-1, at - 1 - self.c.window), -1), 1):
            if times[j] < earliest:
                break
            other = items[j]
            if other in seen:
                continue
            seen.add(other)
            w = weight * TYPE_WEIGHT_BY_CODE[types[j]] / distance
            if w > 0.0 and (not evicted or other in counted):  # not an item evicted since (it pairs
                # again once counted; before any eviction every item paired was counted)
                if row_a is None:  # the event's own row, looked up once for all its pairs
                    a = self._number(item)
                    row_a = self._row(a)
                b = ids.get(other)
                if b is None:
                    b = self._number(other)
                row_a = add(row_a, a, b, w)
                add(self._row(b), b, a, w)
        # (Items numbered are always counted too: only counted items are paired.)
        if max(len(self.popularity), len(self.categories)) > self._evict_at:
            self._evict()

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

    def _number(self, item: str) -> int:
        n = self.ids.get(item)
        if n is None:
            if self._free:  # an evicted item's number, which no row holds any more
                n = self.ids[item] = self._free.pop()
                self.names[n], self._dead[n] = item, False
            else:
                n = self.ids[item] = len(self.names)
                self.names.append(item)
        return n

    def _row(self, a: int) -> "_Row":
        row = self.pairs.get(a)
        if row is None:
            row = self.pairs[a] = _Row()
        return row

    def _add(self, row: "_Row", a: int, b: int, w: float) -> "_Row":
        """w added to the pair weight of a (whose row is `row`) with b; the row of a
        after, its strongest `kept` if it grew past twice that."""
        row.total += w
        slots = row.slots
        if slots is None:  # a row made by pruning or swept: its slots once it is added to
            slots = row.slots = dict(zip(row.numbers, range(len(row.numbers))))
        slot = slots.get(b)
        if slot is not None:
            row.weights[slot] += w
            return row
        numbers = row.numbers
        slots[b] = len(numbers)
        numbers.append(b)
        row.weights.append(w)
        if len(numbers) > self._prune_at:
            if self._held:  # first without the evicted neighbours, as the eviction leaves it
                self._drop_evicted(row)
            if len(row.numbers) > self._prune_at:
                row = self.pairs[a] = row.strongest(self.c.kept, self.names)
        return row

    def _evict(self) -> None:
        """Keep the `max_items` most popular items (decayed counts, ties by item id, as
        `trending` ranks them): the others' popularity, category, number and row go now,
        and they go from the rows kept as `_swept` reaches each (a row's total stays, as
        when it is pruned). The items kept keep their numbers, and the trending list is
        ranked again. Relies on every item numbered being counted (observe numbers only
        counted items), so that the items it drops from `popularity` are all it must
        drop from the rows."""
        if self._sweep:  # the last eviction's sweep, unfinished (only with a bound of a few items)
            self._swept(len(self._sweep))
        items, kept = self._popular(self.c.max_items)
        popularity, ids, names, pairs = self.popularity, self.ids, self.names, self.pairs
        held = []
        for at in np.flatnonzero(~kept).tolist():
            item = items[at]
            del popularity[item]
            n = ids.pop(item, None)
            if n is not None:
                names[n] = None
                row = pairs.pop(n, None)
                if row is not None:
                    self._dropped.append(row)  # freed by the sweep too (25,000 rows at once: most of an eviction)
                held.append(n)
        self.categories = {i: c for i, c in self.categories.items() if i in popularity}
        if held:
            self._held = held
            self._dead_room()[held] = True
            self._sweep = list(pairs)
            # Each event counts at most one item more: the sweep ends within half the quarter.
            self._sweep_rows = -(-2 * len(self._sweep) // (self._evict_at - self.c.max_items))
            self._swept(0)  # with no row kept, the numbers are free at once
        self._top = None
        self.evictions += 1

    def _swept(self, n: int) -> None:
        """The evicted neighbours out of the next n rows of the sweep; once every row is
        swept, the evicted numbers can be given again."""
        sweep, pairs = self._sweep, self.pairs
        for _ in range(min(n, len(sweep))):
            row = pairs.get(sweep.pop())
            if row is not None:
                self._drop_evicted(row)
        if n:
            del self._dropped[-n:]
        if not sweep:
            self._free.extend(self._held)
            self._held, self._dropped = [], []

    def _drop_evicted(self, row: "_Row") -> None:
        numbers = np.frombuffer(row.numbers, np.int64)
        live = ~self._dead_room()[numbers]
        if not live.all():
            weights = np.frombuffer(row.weights, np.float64)
            row.numbers, row.weights, row.slots = array("q"), array("d"), None
            row.numbers.frombytes(numbers[live].tobytes())
            row.weights.frombytes(weights[live].tobytes())

    def _dead_room(self) -> np.ndarray:
        """_dead, as long as the numbers given (numbers new since an eviction: false)."""
        if len(self._dead) < len(self.names):
            self._dead = np.concatenate((self._dead, np.zeros(len(self.names), bool)))
        return self._dead

    def _popular(self, n: int) -> tuple[list[str], np.ndarray]:
        """(the items counted, a mask of the n of the greatest decayed counts, ties: the
        greater item id), ranked over arrays (an eviction ranks every item counted:
        125,000 at the default bound)."""
        items = list(self.popularity)
        if n >= len(items):
            return items, np.ones(len(items), bool)
        counts = np.fromiter(self.popularity.values(), np.float64, len(items))
        cut = np.partition(counts, len(items) - n)[len(items) - n]  # the n-th greatest count
        chosen = counts > cut
        tied = sorted(np.flatnonzero(counts == cut).tolist(), key=items.__getitem__, reverse=True)
        chosen[tied[:n - int(chosen.sum())]] = True
        return items, chosen

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
            popularity = self.popularity
            items, chosen = self._popular(max(n, 200))
            top = self._top = sorted(((items[at], popularity[items[at]]) for at in np.flatnonzero(chosen).tolist()),
                                     key=lambda p: (p[1], p[0]), reverse=True)
            self._top_at = self.events
            self.rankings += 1
        return top[:n]

    def related_arrays(self, recent: Sequence[str], limit: int = 10,
                       among: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Items bought or viewed with the member's `limit` newest distinct items
        (`recent`, newest last), each neighbour list normalised to sum 1 and the newer
        items weighted more (1 / rank): (item numbers, their scores, the scores of the
        item numbers `among`, 0 for those not related). An item that neighbours several
        of the member's items comes once for each, with its summed score every time.

        Each item's score is summed in the order a loop over the rows would sum it (a
        row's weight times the neighbour's, newest row first), so the floats are those
        of that loop (tests/unit/domain/test_item_stats.py)."""
        numbers, weights, factors, lengths = [], [], [], []
        rank = 0
        for item in dict.fromkeys(reversed(recent)):
            if rank == limit:
                break
            rank += 1
            row = self.pairs.get(self.ids.get(item, -1))
            if row is None or not row.numbers or not row.total:
                continue
            numbers.append(np.frombuffer(row.numbers, np.int64))
            weights.append(np.frombuffer(row.weights, np.float64))
            factors.append(1.0 / (rank * row.total))
            lengths.append(len(row.numbers))
        among = np.empty(0, np.int64) if among is None else among
        if not numbers:
            return np.empty(0, np.int64), np.empty(0), np.zeros(len(among))
        keys = np.concatenate(numbers)  # copies: no view is left to pin a row's arrays
        scores = np.concatenate(weights) * np.repeat(factors, lengths)
        del numbers, weights
        if self._held:  # rows not yet swept may hold evicted items
            live = ~self._dead_room()[keys]
            keys, scores = keys[live], scores[live]
        sums = self._sums = _room(self._sums, len(self.names))
        np.add.at(sums, keys, scores)  # in order, from 0.0: as the loop sums
        out, known = sums[keys], sums[among]
        sums[keys] = 0.0
        return keys, out, known

    def neighbours(self, item: str) -> dict[str, float]:
        """The item's kept neighbours and their summed pair weights."""
        row, names = self.pairs.get(self.ids.get(item, -1)), self.names
        return {} if row is None else {names[n]: w for n, w in zip(row.numbers, row.weights) if names[n] is not None}

    def numbers_of(self, items: Collection[str]) -> np.ndarray:
        """The numbers of those of `items` that were ever paired."""
        numbers = np.fromiter(map(self.ids.get, items, repeat(-1, len(items))), np.int64, len(items))
        return numbers[numbers >= 0]

    def marked(self, numbers: np.ndarray, among: np.ndarray) -> np.ndarray:
        """Which of `numbers` are in `among` (both item numbers)."""
        marks = self._marks = _room(self._marks, len(self.names))
        marks[among] = True
        out = marks[numbers]
        marks[among] = False
        return out

    def once(self, numbers: np.ndarray) -> np.ndarray:
        """A mask of `numbers` (item numbers) that keeps one place of each number:
        whichever of its places numpy's assignment left in the scratch (which one
        does not matter to a caller that reads the same value at each)."""
        places = self._places = _room(self._places, len(self.names))
        at = np.arange(len(numbers))
        places[numbers] = at
        return places[numbers] == at

    def related(self, recent: Sequence[str], limit: int = 10) -> dict[str, float]:
        """`related_arrays` as {item id: score}."""
        numbers, scores, _ = self.related_arrays(recent, limit)
        names = self.names
        return {names[n]: v for n, v in zip(numbers.tolist(), scores.tolist())}


def _room(scratch: np.ndarray, n: int) -> np.ndarray:
    """A zeroed scratch array of at least n entries: `scratch` itself while it has them
    (its callers leave it zero), else a new one of twice n."""
    return scratch if len(scratch) >= n else np.zeros(2 * n, scratch.dtype)


class _Row:
    """One item's neighbours: their numbers and summed weights side by side, in arrays
    that numpy reads without a copy; `slots` finds a neighbour's place (made when first
    needed: None until then). `total` is the
    item's summed pair weight, the neighbours pruned away included."""
    __slots__ = ("slots", "numbers", "weights", "total")

    def __init__(self, numbers=(), weights=(), total: float = 0.0):
        self.numbers = array("q", numbers)
        self.weights = array("d", weights)
        self.slots: Optional[dict[int, int]] = None
        self.total = total

    def strongest(self, kept: int, names: list[str]) -> "_Row":
        """The row of the `kept` strongest neighbours (of equal weights, the greatest
        item ids, as heapq.nlargest by (weight, id) keeps them)."""
        weights = np.array(self.weights)
        numbers = np.array(self.numbers, np.int64)
        cut = np.partition(weights, len(weights) - kept)[len(weights) - kept]  # the kept-th largest
        above = np.flatnonzero(weights > cut)
        tied = np.flatnonzero(weights == cut).tolist()
        tied.sort(key=lambda at: names[numbers[at]], reverse=True)
        chosen = above.tolist() + tied[:kept - len(above)]
        return _Row(numbers[chosen].tolist(), weights[chosen].tolist(), self.total)
