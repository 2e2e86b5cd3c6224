"""Every output the processor emits over the bench log, hashed, and its CPU time: to
show that a change to the processing core changes no output, and what it costs.

Model answers are drawn from the bench log's real item ids (20 a row, a seeded
generator per row), so the model signal overlaps the re-buy, related and trending
ones as in a worker; `emitted_at` (wall-clock) is left out of the hash.

    python -m bench.outputs_digest            # outputs, digest, CPU seconds
    python -m bench.outputs_digest --commits  # the same, a commit after every batch

With `--commits`, the changed states go to a store after every batch and its
scorings and the cache is trimmed to `member_cache_max`, as a worker's commit
does (stream/processing/member_cache.py): with a bound below the log's members
(MEMBERSTREAM_MEMBER_CACHE_MAX=1000), the members that leave the cache must
decide as if they had stayed (so the model's answers are drawn by each row's
sequence, not by its number). Each topic's count and digest are printed too.

Old against new, alternating on the same machine (the processor-alone figures of
docs/DESIGN.md, "Recommendation lists over arrays"):

    git worktree add /tmp/old <commit> && cp bench/outputs_digest.py /tmp/old/bench/
    for i in 1 2 3; do for t in /tmp/old .; do
      (cd $t && PYTHONPATH=$t python -m bench.outputs_digest --alone); done; done
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import time
import zlib

import numpy as np
import orjson

from bench.bench_log import bench_lines
from bench.processor_alone import bench_records, processor_alone_eps, run_batches
from stream.settings import Settings


class _DrawnScores:
    model_version = "digest"

    def __init__(self, items: list[str], checkpoints: int, by_sequence: bool = False):
        """`by_sequence`: each row's items and scores drawn by its sequence, not by its
        number and place in the request (the same answer whatever else was asked, as
        when checkpoints are scored by request)."""
        self.items, self.checkpoints, self.rows, self.by_sequence = items, checkpoints, 0, by_sequence

    async def score(self, rows):
        from stream.scoring.scores import Scores

        n, drawn, drawn_scores = len(rows), [], []
        for row in rows:
            self.rows += 1
            seed = zlib.crc32(b"\0".join(row.items) + bytes(row.types)) if self.by_sequence else self.rows
            rng = np.random.default_rng(seed)
            drawn.append([self.items[j] for j in rng.choice(len(self.items), 20, replace=False)])
            drawn_scores.append(rng.random(20))
        if self.by_sequence:
            scores = np.sort(np.array(drawn_scores, np.float32))[:, ::-1]
        else:
            scores = np.sort(np.random.default_rng(7).random((n, 20)).astype(np.float32))[:, ::-1]
        return Scores(np.full(n, 0.3, np.float32), drawn, scores, np.full((n, self.checkpoints), 0.3, np.float32))


def drawn_processor(lines: list[bytes], settings: Settings, by_sequence: bool = False):
    """A processor on an empty store whose model answers are drawn from the log's item
    ids (`_DrawnScores`)."""
    from stream.processing.processor import MemberProcessor

    items = list(dict.fromkeys(orjson.loads(line).get("item_id") for line in lines[:60000]
                               if b'"item_id"' in line))[:3000]
    return MemberProcessor(settings, {}, _DrawnScores(items, len(settings.inactivity_checkpoints_days), by_sequence))


class Commits:
    """A worker's commit after every batch and its scorings (`run_batches`' `after`): the
    states the results changed (`took`) stored, then the cache trimmed."""

    def __init__(self, proc) -> None:
        self.proc, self.changed = proc, {}

    def took(self, result) -> None:
        self.changed.update(result.changed)

    def __call__(self) -> None:
        for member, state in self.changed.items():
            self.proc.store[member.encode()] = state.to_bytes()
        self.proc.trim_cache(self.changed)
        self.changed.clear()


def digest(lines: list[bytes], settings: Settings, commits: bool = False) -> tuple[int, str, float, dict]:
    """(outputs, their digest, CPU seconds, {topic: (outputs, digest)}); `commits`: the
    changed states stored and the cache trimmed after every batch and its scorings."""
    proc = drawn_processor(lines, settings, commits)
    commit = Commits(proc) if commits else None
    h, topics = hashlib.sha256(), {}

    def each(result) -> None:
        if commit is not None:
            commit.took(result)
        for out in result.outputs:
            if out.value is not None:
                message = orjson.loads(out.value)
                message.pop("emitted_at", None)
                text = orjson.dumps(message, option=orjson.OPT_SORT_KEYS)
                h.update(out.topic.encode())
                h.update(text)
                topic = topics.setdefault(out.topic, [0, hashlib.sha256()])
                topic[0] += 1
                topic[1].update(text)
    t = time.process_time()
    asyncio.run(run_batches(proc, bench_records(lines), settings, each, commit or (lambda: None)))
    seconds = time.process_time() - t
    by_topic = {name: (n, topic_hash.hexdigest()[:16]) for name, (n, topic_hash) in sorted(topics.items())}
    return sum(n for n, _ in by_topic.values()), h.hexdigest()[:16], seconds, by_topic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alone", action="store_true", help="print processor_alone_eps instead")
    parser.add_argument("--commits", action="store_true",
                        help="store the changed states and trim the cache after every batch")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    settings = Settings()
    lines = bench_lines(settings)
    if args.alone:
        print(f"processor alone: {processor_alone_eps(lines, settings):,.0f} events/s")
    else:
        count, hexdigest, seconds, by_topic = digest(lines, settings, args.commits)
        print(f"{count:,} outputs  digest {hexdigest}  {seconds:.1f} s of CPU")
        for topic, (n, topic_digest) in by_topic.items():
            print(f"  {topic:<22}{n:>8,}  {topic_digest}")


if __name__ == "__main__":
    main()
