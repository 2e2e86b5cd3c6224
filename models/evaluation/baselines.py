"""Classic next-item baselines, fitted on training sessions in the same run.

Every baseline answers `recommend(history, k)`: the k best next items after
a session (or member history) given as item ids, oldest first. Ties are
broken by training popularity, then by item id, so results are deterministic.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Iterable, Sequence


class Popularity:
    name = "popularity"

    def __init__(self, sessions: Iterable[Sequence[str]]):
        self.counts = Counter(i for s in sessions for i in s)
        self.ranking = sorted(self.counts, key=lambda i: (-self.counts[i], i))

    def order(self, scores: dict[str, float], k: int) -> list[str]:
        """Top k of `scores`, ties by popularity; filled up with popular items."""
        top = sorted(scores, key=lambda i: (-scores[i], -self.counts[i], i))[:k]
        if len(top) < k:
            seen = set(top)
            top += [i for i in self.ranking[:k + len(top)] if i not in seen][:k - len(top)]
        return top

    def recommend(self, history: Sequence[str], k: int) -> list[str]:
        return self.ranking[:k]


class Successor(Popularity):
    """First-order Markov: what followed the last item in training sessions."""
    name = "markov (last-item successor)"

    def __init__(self, sessions: Iterable[Sequence[str]]):
        sessions = list(sessions)
        super().__init__(sessions)
        self.next: dict[str, Counter] = defaultdict(Counter)
        for s in sessions:
            for a, b in zip(s, s[1:]):
                self.next[a][b] += 1

    def recommend(self, history: Sequence[str], k: int) -> list[str]:
        return self.order(dict(self.next.get(history[-1], {})), k)


class CoOccurrence(Popularity):
    """Items that share a session with the last item, in either order.

    Weighted by 1 / distance within the session, so near neighbours count
    most; the usual item-to-item "bought/viewed together" list.
    """
    name = "co-occurrence"

    def __init__(self, sessions: Iterable[Sequence[str]], window: int = 5):
        sessions = list(sessions)
        super().__init__(sessions)
        self.pairs: dict[str, Counter] = defaultdict(Counter)
        for s in sessions:
            for i, a in enumerate(s):
                for j in range(max(0, i - window), min(len(s), i + window + 1)):
                    if j != i and s[j] != a:
                        self.pairs[a][s[j]] += 1.0 / abs(i - j)

    def recommend(self, history: Sequence[str], k: int) -> list[str]:
        return self.order(dict(self.pairs.get(history[-1], {})), k)


class SessionKNN(Popularity):
    """SKNN (Jannach & Ludewig, 2017): items of the most similar past sessions.

    Candidate neighbours are the `sample` most recent training sessions that
    share an item with the current one; similarity is the cosine of binary
    item sets with the current session's items weighted by recency (as in
    V-SKNN); an item's score is the summed similarity of the `k_neighbors`
    best neighbours that contain it.
    """
    name = "sknn (session neighbours)"

    def __init__(self, sessions: Iterable[Sequence[str]], k_neighbors: int = 100,
                 sample: int = 500):
        sessions = [list(s) for s in sessions]  # in time order: later = more recent
        super().__init__(sessions)
        self.sets = [set(s) for s in sessions]
        self.by_item: dict[str, list[int]] = defaultdict(list)
        for n, items in enumerate(self.sets):
            for i in items:
                self.by_item[i].append(n)
        self.k_neighbors, self.sample = k_neighbors, sample

    def recommend(self, history: Sequence[str], k: int) -> list[str]:
        weights: dict[str, float] = {}
        for pos, item in enumerate(history):
            weights[item] = (pos + 1) / len(history)  # linear decay, newest = 1
        candidates: set[int] = set()
        for item in weights:
            candidates.update(self.by_item.get(item, ())[-self.sample:])
        recent = sorted(candidates)[-self.sample:]
        norm = math.sqrt(len(weights))
        sims = []
        for n in recent:
            items = self.sets[n]
            overlap = sum(w for i, w in weights.items() if i in items)
            if overlap:
                sims.append((overlap / (norm * math.sqrt(len(items))), n))
        sims.sort(key=lambda p: (-p[0], -p[1]))
        scores: dict[str, float] = defaultdict(float)
        for sim, n in sims[:self.k_neighbors]:
            for i in self.sets[n]:
                scores[i] += sim
        return self.order(dict(scores), k)
