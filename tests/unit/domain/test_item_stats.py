"""ItemStats keeps co-occurrence rows as arrays of item numbers and sums a member's
related items with numpy: the same rows and the same floats as counting and summing
with plain dicts by item id (the reference below, the implementation before numbers),
also when it keeps only the most popular items (`max_items`)."""
from __future__ import annotations

import heapq

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.item_stats import TYPE_WEIGHT_BY_CODE, ItemStats, ItemStatsConfig

DAY_MS = 86_400_000


class DictStats:
    """Co-occurrence counted by item id in dicts of dicts, pruned by heapq.nlargest on
    (weight, id); popularity by item id; past `max_items` and a quarter (counted,
    paired or with a category), only the most popular kept, everything else of the
    others forgotten (they pair again once counted again)."""

    def __init__(self, config: ItemStatsConfig):
        self.c, self.pairs, self.totals = config, {}, {}
        self.popularity, self.categories, self.paired, self.ref = {}, {}, set(), None

    def observe(self, items, types, times, at, category=None):
        weight = TYPE_WEIGHT_BY_CODE[types[at]]
        item, ts = items[at], times[at]
        if category is not None:
            self.categories[item] = category
        if weight <= 0.0:
            return
        self.ref = ts if self.ref is None else self.ref
        self.popularity[item] = self.popularity.get(item, 0.0) + weight * 2.0 ** (
            (ts - self.ref) / (self.c.half_life_days * DAY_MS))
        earliest, seen = ts - self.c.window_s * 1000, {item}
        for distance, j in enumerate(range(at - 1, max(-1, at - 1 - self.c.window), -1), 1):
            if times[j] < earliest:
                break
            if items[j] in seen:
                continue
            seen.add(items[j])
            w = weight * TYPE_WEIGHT_BY_CODE[types[j]] / distance
            if w > 0.0 and items[j] in self.popularity:
                self._pair(item, items[j], w)
                self._pair(items[j], item, w)
                self.paired.update((item, items[j]))
        bound = self.c.max_items + max(1, self.c.max_items // 4)
        if max(len(self.popularity), len(self.paired), len(self.categories)) > bound:
            kept = {i for i, _ in heapq.nlargest(self.c.max_items, self.popularity.items(),
                                                  key=lambda p: (p[1], p[0]))}
            self.popularity = {i: v for i, v in self.popularity.items() if i in kept}
            self.categories = {i: c for i, c in self.categories.items() if i in kept}
            self.paired &= kept
            self.pairs = {a: {b: v for b, v in row.items() if b in kept} for a, row in self.pairs.items() if a in kept}
            self.totals = {a: t for a, t in self.totals.items() if a in kept}

    def _pair(self, a, b, w):
        row = self.pairs.setdefault(a, {})
        row[b] = row.get(b, 0.0) + w
        self.totals[a] = self.totals.get(a, 0.0) + w
        if len(row) > 2 * self.c.kept:
            self.pairs[a] = dict(heapq.nlargest(self.c.kept, row.items(), key=lambda p: (p[1], p[0])))

    def related(self, recent, limit):
        out, rank = {}, 0
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


_ITEMS = [f"i{n:02d}" for n in range(40)]
_members = st.lists(st.lists(st.tuples(st.sampled_from(_ITEMS), st.sampled_from([1, 2, 3, 4, 5]),
                                       st.integers(0, 3)), min_size=1, max_size=25), min_size=1, max_size=30)


def _count(members, config, categories=False, kind=ItemStats, each=lambda stats, reference: None):
    """The members' events counted by a `kind` and a DictStats, `each` called after every event."""
    stats, reference = kind(config), DictStats(config)
    for member in members:
        items, types, times, ts = [], [], [], 0
        for item, code, gap_hours in member:
            ts += gap_hours * 3_600_000
            items.append(item), types.append(code), times.append(ts)
            category = f"c{item[-1]}" if categories else None
            stats.observe(items, types, times, len(items) - 1, category)
            reference.observe(items, types, times, len(items) - 1, category)
            each(stats, reference)
    return stats, reference


@settings(max_examples=150, deadline=None)
@given(members=_members, kept=st.integers(1, 6), window=st.integers(1, 10),
       recent=st.lists(st.sampled_from(_ITEMS + ["unknown"]), max_size=30), limit=st.integers(1, 12))
def test_rows_and_related_scores_equal_counting_by_item_id(members, kept, window, recent, limit):
    """Small `kept` prunes often, and weights from five types and ten distances tie
    often: the kept neighbours, every weight and every related score are the dicts'
    exactly (no tolerance)."""
    stats, reference = _count(members, ItemStatsConfig(window=window, window_s=86_400.0, kept=kept))
    for item in _ITEMS:
        assert stats.neighbours(item) == reference.pairs.get(item, {})
    assert stats.related(recent, limit) == reference.related(recent, limit)
    among = stats.numbers_of(_ITEMS[::3])
    numbers, scores, known = stats.related_arrays(recent, limit, among)
    assert len(numbers) == len(scores) >= len(reference.related(recent, limit))
    assert {stats.names[n]: s for n, s in zip(numbers.tolist(), scores.tolist())} == reference.related(recent, limit)
    assert [stats.names[n] for n in among.tolist()] == [i for i in _ITEMS[::3] if i in stats.ids]
    assert known.tolist() == [reference.related(recent, limit).get(stats.names[n], 0.0) for n in among.tolist()]
    assert not stats._sums.any()  # the scratch is left zero for the next member


@settings(max_examples=150, deadline=None)
@given(members=_members, kept=st.integers(1, 6), max_items=st.integers(1, 12),
       recent=st.lists(st.sampled_from(_ITEMS + ["unknown"]), max_size=30))
def test_past_max_items_only_the_most_popular_stay_and_the_rest_is_as_if_never_paired(
        members, kept, max_items, recent):
    """40 items and at most 12 kept: evictions come often, mid-member. What stays is the
    dicts' exactly: popularity, categories, rows (those kept, without the others), related
    scores; the numbers are those of the items kept, and the memory is bounded (the
    numbers given: at most the items counted and one, and those evicted that rows may
    still hold, at most a quarter and one; none is appended while one is free)."""
    stats, reference = _count(members, ItemStatsConfig(window=10, kept=kept, max_items=max_items), True)
    bound = max_items + max(1, max_items // 4)
    assert len(stats.popularity) <= bound and len(stats.pairs) <= bound
    assert len(stats.names) <= bound + (bound - max_items) + 2
    assert stats.popularity == reference.popularity and stats.categories == reference.categories
    assert set(stats.ids) == reference.paired
    assert stats.ids == {i: n for n, i in enumerate(stats.names) if i is not None}
    for item in _ITEMS:
        assert stats.neighbours(item) == reference.pairs.get(item, {})
    assert stats.related(recent, 10) == reference.related(recent, 10)
    assert stats.trending(5) == heapq.nlargest(5, reference.popularity.items(), key=lambda p: (p[1], p[0]))


class _SlowSweep(ItemStats):
    """Sweeps one row per event after an eviction: reads and prunes meet rows that
    still hold evicted items, and the next eviction may come before the sweep ends."""

    def _evict(self):
        super()._evict()
        self._sweep_rows = 1


@settings(max_examples=150, deadline=None)
@given(members=_members, kept=st.integers(1, 6), max_items=st.integers(1, 12),
       recent=st.lists(st.sampled_from(_ITEMS), min_size=1, max_size=12))
def test_rows_not_yet_swept_read_and_prune_as_if_swept_and_numbers_come_back_once_free(
        members, kept, max_items, recent):
    """After every event, with the sweep slowed down: the rows and related scores are the
    dicts' exactly; a row holds only items kept or evicted numbers not given again, and
    a number is given again only once no row holds it."""
    def check(stats, reference):
        assert {i: stats.neighbours(i) for i in _ITEMS} == {i: reference.pairs.get(i, {}) for i in _ITEMS}
        assert stats.related(recent, 5) == reference.related(recent, 5)
        held = set(stats._held)
        for row in stats.pairs.values():
            assert all(n in held or stats.names[n] is not None for n in row.numbers)
        assert not held & set(stats._free) and all(stats.names[n] is None for n in stats._free)

    stats, _ = _count(members, ItemStatsConfig(window=10, kept=kept, max_items=max_items), kind=_SlowSweep,
                      each=check)
    assert stats.ids == {i: n for n, i in enumerate(stats.names) if i is not None}


def test_an_eviction_keeps_the_most_popular_and_counts_a_returning_item_from_nothing():
    stats = ItemStats(ItemStatsConfig(max_items=3))  # evicts past 3 + 1 items
    items, types, times = [], [], []

    def event(item, code, ts):
        items.append(item), types.append(code), times.append(ts)
        stats.observe(items, types, times, len(items) - 1)

    for item, code in [("a", 5), ("b", 5), ("c", 5), ("a", 5), ("d", 1), ("e", 1)]:
        event(item, code, 0)
    # Popularity a 2, b 1, c 1, d 0.2, e 0.2: the fifth item counted evicts d and e.
    assert stats.evictions == 1 and set(stats.popularity) == {"a", "b", "c"}
    assert stats.names == ["b", "a", "c", None, None]  # as numbered first; d's and e's given again
    assert stats.neighbours("a") == {"b": 1.5, "c": 1.5}  # without d (0.2) and e (0.1)
    assert stats.pairs[stats.ids["a"]].total == 1.5 + 1.5 + 0.2 + 0.1  # as a pruned row's
    event("d", 5, 2 * DAY_MS)  # alone in its window
    assert stats.popularity["d"] == 2.0 ** (2 * DAY_MS / (7.0 * DAY_MS))  # not 0.2 more
    assert stats.evictions == 1 and stats.neighbours("d") == {}


def test_an_item_related_to_several_comes_once_for_each_with_its_summed_score():
    stats, _ = _count([[("a", 5, 0), ("x", 5, 0)], [("b", 5, 0), ("x", 5, 0)]], ItemStatsConfig())
    numbers, scores, known = stats.related_arrays(["a", "b"], 10, stats.numbers_of(["x", "a", "nowhere"]))
    named = sorted(zip([stats.names[n] for n in numbers.tolist()], scores.tolist()))
    assert named == [("x", 1.5), ("x", 1.5)]  # row b at rank 1 (1.0), row a at rank 2 (0.5)
    assert known.tolist() == [1.5, 0.0]  # x, a (related to nothing here); "nowhere" has no number


@settings(max_examples=100, deadline=None)
@given(numbers=st.lists(st.integers(0, 5), max_size=30))
def test_once_keeps_one_place_of_each_number(numbers):
    stats, _ = _count([[(f"i{n}", 5, 0) for n in range(6)]], ItemStatsConfig())
    array = np.array(numbers, np.int64)
    once = stats.once(array)
    assert sorted(array[once].tolist()) == sorted(set(numbers))
    assert stats.once(array[::-1]).sum() == len(set(numbers))  # whatever the scratch held before


def test_the_arrays_read_leave_the_rows_free_to_grow():
    """related_arrays reads the rows' buffers: nothing it returns may pin them (an
    array.array with a live export refuses to grow)."""
    stats, _ = _count([[("a", 5, 0), ("b", 5, 0)]], ItemStatsConfig())
    kept = [stats.related_arrays(["a"], 10), stats.related_arrays(["a", "b"], 10)]
    more = [("a", 5, 0)] + [(f"n{n}", 5, 0) for n in range(300)]
    items, types, times = [], [], []
    for item, code, ts in more:
        items.append(item), types.append(code), times.append(ts)
        stats.observe(items, types, times, len(items) - 1)
    assert len(stats.neighbours("a")) > 1 and len(kept) == 2
