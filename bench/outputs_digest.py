"""Every output the processor emits over the bench log, hashed, and its CPU time: to
show that a change to the processing core changes no output, and what it costs.

Model answers are drawn from the bench log's real item ids (20 a row, a seeded
generator per row), so the model signal overlaps the re-buy, related and trending
ones as in a worker; `emitted_at` (wall-clock) is left out of the hash.

    python -m bench.outputs_digest            # outputs, digest, CPU seconds

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

import numpy as np
import orjson

from bench.bench_log import bench_lines
from bench.processor_alone import bench_records, processor_alone_eps, run_batches
from stream.settings import Settings


class _DrawnScores:
    model_version = "digest"

    def __init__(self, items: list[str], checkpoints: int):
        self.items, self.checkpoints, self.rows = items, checkpoints, 0

    async def score(self, rows):
        from stream.scoring.scores import Scores

        n, drawn = len(rows), []
        for _ in range(n):
            self.rows += 1
            picks = np.random.default_rng(self.rows).choice(len(self.items), 20, replace=False)
            drawn.append([self.items[j] for j in picks])
        scores = np.sort(np.random.default_rng(7).random((n, 20)).astype(np.float32))[:, ::-1]
        return Scores(np.full(n, 0.3, np.float32), drawn, scores, np.full((n, self.checkpoints), 0.3, np.float32))


def digest(lines: list[bytes], settings: Settings) -> tuple[int, str, float]:
    from stream.processing.processor import MemberProcessor

    items = list(dict.fromkeys(orjson.loads(line).get("item_id") for line in lines[:60000]
                               if b'"item_id"' in line))[:3000]
    proc = MemberProcessor(settings, {}, _DrawnScores(items, len(settings.inactivity_checkpoints_days)))
    h, count = hashlib.sha256(), 0

    def each(result) -> None:
        nonlocal count
        for out in result.outputs:
            if out.value is not None:
                message = orjson.loads(out.value)
                message.pop("emitted_at", None)
                h.update(out.topic.encode())
                h.update(orjson.dumps(message, option=orjson.OPT_SORT_KEYS))
                count += 1
    t = time.process_time()
    asyncio.run(run_batches(proc, bench_records(lines), settings, each))
    return count, h.hexdigest()[:16], time.process_time() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alone", action="store_true", help="print processor_alone_eps instead")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    settings = Settings()
    lines = bench_lines(settings)
    if args.alone:
        print(f"processor alone: {processor_alone_eps(lines, settings):,.0f} events/s")
    else:
        count, hexdigest, seconds = digest(lines, settings)
        print(f"{count:,} outputs  digest {hexdigest}  {seconds:.1f} s of CPU")


if __name__ == "__main__":
    main()
