"""What the bound on the decoded member states (`member_cache_max`) saves and costs:
`python -m bench.cache_bound [--copies N] BOUND [BOUND ...]` (0: no bound).

The processor over the bench log N times over (members and event ids renamed per
copy, so the members add up and the items stay the bench log's), a commit after
every batch and its scorings as a worker's (the changed states stored, then the
cache trimmed: stream/processing/member_cache.py), the worker's GC setting, the
model's answers drawn as `bench.outputs_digest --commits` draws them. Each bound
runs in a process of its own (its peak RSS is its own). Per bound: members
decoded at the end and how many left the cache, the objects the collector tracks,
a full collection's time at the end, the worst pause during the run, the peak
RSS and the CPU seconds.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

HEADER = (f"{'bound':>9} {'members':>9} {'cached':>9} {'left':>9} {'tracked':>10} {'full ms':>8} "
          f"{'worst ms':>9} {'peak MB':>8} {'CPU s':>6}")


def measure(bound: int, copies: int) -> dict:
    """One bound, in this process."""
    import asyncio
    import gc
    import logging
    import resource
    import time

    from bench.bench_log import bench_lines
    from bench.outputs_digest import Commits, drawn_processor
    from bench.processor_alone import bench_records, run_batches
    from stream.processing.member_cache import tune_gc
    from stream.settings import Settings

    logging.disable(logging.CRITICAL)
    settings = Settings(member_cache_max=bound)
    lines = bench_lines(settings)
    proc = drawn_processor(lines, settings, by_sequence=True)
    commit = Commits(proc)
    worst, began = [0.0], [0.0]

    def timed(phase: str, info: dict) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            worst[0] = max(worst[0], time.perf_counter() - began[0])

    tune_gc(settings.gc_threshold)
    gc.callbacks.append(timed)
    cpu = time.process_time()
    for c in range(copies):
        asyncio.run(run_batches(proc, bench_records([_renamed(line, f"c{c}-") for line in lines]), settings,
                                commit.took, commit))  # the copy's records freed after
    cpu = time.process_time() - cpu
    gc.callbacks.remove(timed)
    t = time.perf_counter()
    gc.collect()
    full = time.perf_counter() - t
    return {"bound": bound, "members": len(proc.store), "cached": len(proc.cache),
            "left": proc.totals["members_evicted"], "tracked": len(gc.get_objects()),
            "full_ms": 1000 * full, "worst_ms": 1000 * worst[0],
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cpu_s": cpu}


def _renamed(line: bytes, prefix: str) -> bytes:
    """The event with its member and event ids prefixed; a line that is no such event as it is."""
    import orjson

    try:
        event = orjson.loads(line)
        event["member_id"] = prefix + str(event["member_id"])
        event["event_id"] = prefix + str(event["event_id"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return line
    return orjson.dumps(event)


def row(r: dict) -> str:
    bound = f"{r['bound']:,}" if r["bound"] else "none"
    return (f"{bound:>9} {r['members']:>9,} {r['cached']:>9,} {r['left']:>9,} {r['tracked']:>10,} "
            f"{r['full_ms']:>8.0f} {r['worst_ms']:>9.0f} {r['peak_mb']:>8,.0f} {r['cpu_s']:>6.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bounds", nargs="+", type=int, metavar="BOUND", help="member_cache_max (0: none)")
    parser.add_argument("--copies", type=int, default=4, help="times over the bench log (default 4)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: one bound, JSON out
    args = parser.parse_args()
    if args.copies < 1 or any(b < 0 for b in args.bounds):
        parser.exit(2, "cache_bound: --copies must be at least 1 and each BOUND at least 0\n")
    if args.one:
        print(json.dumps(measure(args.bounds[0], args.copies)))
        return 0
    print(f"the bench log {args.copies} times over, members renamed per copy, a commit after every batch")
    print(HEADER)
    for bound in args.bounds:
        done = subprocess.run([sys.executable, "-m", "bench.cache_bound", "--one", "--copies", str(args.copies),
                               str(bound)], capture_output=True, text=True)
        if done.returncode != 0:
            parser.exit(1, f"cache_bound: bound {bound} failed: {done.stderr.strip().splitlines()[-1:]}\n")
        print(row(json.loads(done.stdout.strip().splitlines()[-1])), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
