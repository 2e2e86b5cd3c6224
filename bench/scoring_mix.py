"""What the encoder is asked on the bench log, and what a cache could spare it.

    python -m bench.scoring_mix

Runs the processor over the bench log in this process, in the worker's batches
(bench/processor_alone.py), and records every row it sends for scoring. For
each row it finds the longest prefix of the row's sequence that an earlier row
had (any earlier row, kept without bound: an upper bound for any cache). The
model's encoding of those positions is unchanged by what came after them (the
blocks are causal; position ids and gaps count from the window's first event),
so an encoder with a key/value cache needs only the rest. A 50-event window
that slid keeps no prefix: its first event, the position ids of every event
and the oldest event's gap all change.

Then the rows, in 256-row batches in the order they were sent (the served
config's preferred batch), go through the shipped model in this process on
one thread (models/serving.predict, as the Triton backend calls it, churn at
the checkpoints included): encoded at one width per batch (its longest row's)
and in length groups (models/serving.encode_newest), the variants in turns,
the fastest of ROUNDS passes each. Prints two tables; exit 0.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter

import numpy as np

from bench.processor_alone import _ConstantScores, bench_records, run_batches
from stream.settings import Settings

NEW_EVENTS = ((1, 1), (2, 4), (5, 9), (10, 19), (20, 50))  # buckets of new events since a prefix
BATCH, ROUNDS = 256, 3
INCREMENTAL = "incremental (cache)"


def _prefix_kind(low: int, high: int) -> str:
    return f"a prefix kept, {low} new" if low == high else f"a prefix kept, {low}-{high} new"


class _Recorder(_ConstantScores):
    """Answers as processor_alone's scorer, and classifies every row it is sent."""

    def __init__(self, checkpoints: int, window: int):
        super().__init__(checkpoints)
        self.window = window
        self.prefixes: set[int] = set()
        self.kinds: Counter = Counter()      # kind -> rows
        self.positions: Counter = Counter()  # kind -> positions of those rows
        self.encoded = 0                     # positions left to encode with every prefix kept
        self.requests: list[list] = []

    async def score(self, rows):
        self.requests.append(list(rows))
        for row in rows:
            self._classify(row)
        return await super().score(rows)

    def _classify(self, row) -> None:
        n = sum(1 for t in row.types if t)
        events = list(zip(row.items[-n:], row.types[-n:], row.gaps[-n:])) if n else []
        digests = [hash(tuple(events[:j])) for j in range(1, n + 1)]
        kept = next((j for j in range(n, 0, -1) if digests[j - 1] in self.prefixes), 0)
        if kept == n:
            kind = "the same sequence again"
        elif kept:
            kind = _prefix_kind(*next(b for b in NEW_EVENTS if b[0] <= n - kept <= b[1]))
        else:
            kind = f"no prefix: a slid {self.window}-event window" if n == self.window else "no prefix: other"
        self.kinds[kind] += 1
        self.positions[kind] += n
        self.encoded += n - kept
        self.prefixes.update(digests)


def main() -> int:
    from bench.bench_log import bench_lines
    from stream.processing.processor import MemberProcessor

    logging.getLogger("stream").setLevel(logging.ERROR)  # the log's dead letters, one line each
    settings = Settings()
    lines = bench_lines(settings)
    recorder = _Recorder(len(settings.inactivity_checkpoints_days), settings.sequence_length)
    proc = MemberProcessor(settings, {}, recorder)
    asyncio.run(run_batches(proc, bench_records(lines), settings))
    rows, positions = sum(recorder.kinds.values()), sum(recorder.positions.values())
    order = ["the same sequence again"] + [_prefix_kind(*b) for b in NEW_EVENTS] + [
        f"no prefix: a slid {settings.sequence_length}-event window", "no prefix: other"]
    print(f"scoring mix of the bench log ({len(lines):,} events): {rows:,} rows in {len(recorder.requests)} "
          f"requests, {positions:,} positions ({positions / max(rows, 1):.1f} events per row)")
    print(f"{'row':36s}{'rows':>10s}{'share':>8s}{'positions':>12s}{'share':>8s}")
    for kind in order:
        n, p = recorder.kinds[kind], recorder.positions[kind]
        print(f"{kind:36s}{n:10,d}{n / max(rows, 1):8.1%}{p:12,d}{p / max(positions, 1):8.1%}")
    left = recorder.encoded
    print(f"positions to encode with every earlier prefix kept: {left:,} of {positions:,} "
          f"({left / max(positions, 1):.1%}): at most {positions / max(left, 1):.2f}x fewer")
    _served(recorder.requests, settings)
    return 0


def _batches(requests: list[list]) -> list[tuple]:
    """The rows as the model's inputs, BATCH at a time within each request."""
    out = []
    for request in requests:
        for i in range(0, len(request), BATCH):
            rows = request[i:i + BATCH]
            out.append((np.array([r.items for r in rows], dtype=object), np.array([r.types for r in rows], np.int8),
                        np.array([r.gaps for r in rows], np.float32),
                        np.array([[r.silence_s] for r in rows], np.float32)))
    return out


def _served(requests: list[list], settings: Settings) -> None:
    import torch

    from models import serving
    from models.encoder_cache import EncoderCache
    from tests.fixtures.model import shipped

    torch.set_num_threads(1)  # as the backend (config.pbtxt torch_threads)
    model, vocab, k = shipped()
    batches = _batches(requests)
    at = np.array([d * 86400.0 for d in settings.inactivity_checkpoints_days], np.float32)
    rows = sum(len(b[0]) for b in batches)
    real = sum(int((b[1] > 0).sum()) for b in batches)
    computed = {"one width per batch": sum(len(b[1]) * int((b[1] > 0).sum(axis=1).max()) for b in batches),
                "length groups": sum(len(g) * max(int((b[1][g] > 0).sum(axis=1).max()), 1)
                                     for b in batches for g in serving.length_groups((b[1] > 0).sum(axis=1),
                                                                                     serving.CALL_COST_POSITIONS["cpu"]))}
    costs = {"one width per batch": 10 ** 12, "length groups": serving.CALL_COST_POSITIONS["cpu"],
             INCREMENTAL: serving.CALL_COST_POSITIONS["cpu"]}
    best = {name: float("inf") for name in costs}
    try:
        for _ in range(ROUNDS):
            for name, cost in costs.items():
                serving.CALL_COST_POSITIONS["cpu"] = cost
                cache = EncoderCache() if name == INCREMENTAL else None  # warmed by this pass alone
                t = time.perf_counter()
                for b in batches:
                    serving.predict(model, vocab, *b, k=k, cache=cache, at_silences=np.tile(at, (len(b[0]), 1)))
                best[name] = min(best[name], time.perf_counter() - t)
                if cache is not None:
                    computed[name] = cache.positions
    finally:
        serving.CALL_COST_POSITIONS["cpu"] = costs["length groups"]
    print(f"\nthe shipped model in-process over those rows, {len(batches)} batches of up to {BATCH}, 1 thread, "
          f"fastest of {ROUNDS} passes ({real:,} real positions)")
    print(f"{'encoder':24s}{'positions computed':>20s}{'vs real':>9s}{'rows/s':>10s}{'speed-up':>10s}")
    base = rows / best["one width per batch"]
    for name in costs:
        rate = rows / best[name]
        print(f"{name:24s}{computed[name]:20,d}{computed[name] / real:8.2f}x{rate:10,.0f}{rate / base:9.2f}x")


if __name__ == "__main__":
    sys.exit(main())
