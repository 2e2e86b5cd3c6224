"""ItemStats keeps co-occurrence rows as arrays of item numbers and sums a member's
related items with numpy: the same rows and the same floats as counting and summing
with plain dicts by item id (the reference below, the implementation before numbers)."""
from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.item_stats import TYPE_WEIGHT_BY_CODE, ItemStats, ItemStatsConfig

DAY_MS = 86_400_000


class DictStats:
    """Co-occurrence counted by item id in dicts of dicts, pruned by heapq.nlargest on
    (weight, id)."""

    def __init__(self, config: ItemStatsConfig):
        self.c, self.pairs, self.totals = config, {}, {}

    def observe(self, items, types, times, at):
        weight = TYPE_WEIGHT_BY_CODE[types[at]]
        if weight <= 0.0:
            return
        item, ts = items[at], times[at]
        earliest, seen = ts - self.c.window_s * 1000, {item}
        for distance, j in enumerate(range(at - 1, max(-1, at - 1 - self.c.window), -1), 1):
            if times[j] < earliest:
                break
            if items[j] in seen:
                continue
            seen.add(items[j])
            w = weight * TYPE_WEIGHT_BY_CODE[types[j]] / distance
            if w > 0.0:
                self._pair(item, items[j], w)
                self._pair(items[j], item, w)

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


def _count(members, config):
    stats, reference = ItemStats(config), DictStats(config)
    for member in members:
        items, types, times, ts = [], [], [], 0
        for item, code, gap_hours in member:
            ts += gap_hours * 3_600_000
            items.append(item), types.append(code), times.append(ts)
            stats.observe(items, types, times, len(items) - 1)
            reference.observe(items, types, times, len(items) - 1)
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


def test_an_item_related_to_several_comes_once_for_each_with_its_summed_score():
    stats, _ = _count([[("a", 5, 0), ("x", 5, 0)], [("b", 5, 0), ("x", 5, 0)]], ItemStatsConfig())
    numbers, scores, known = stats.related_arrays(["a", "b"], 10, stats.numbers_of(["x", "a", "nowhere"]))
    named = sorted(zip([stats.names[n] for n in numbers.tolist()], scores.tolist()))
    assert named == [("x", 1.5), ("x", 1.5)]  # row b at rank 1 (1.0), row a at rank 2 (0.5)
    assert known.tolist() == [1.5, 0.0]  # x, a (related to nothing here); "nowhere" has no number


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
