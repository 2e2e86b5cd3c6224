"""Memory of the item statistics (trending popularity and co-occurrence) after the bench
log, as one worker counts them: `python -m bench.item_stats_size [--max-items N ...]`.

The statistics are per worker (stream/domain/item_stats.py): each worker holds the
items its members paired, whatever partitions it owns, so they grow with the
catalogue, not with the members, up to `item_stats_max_items` (the most popular
kept; docs/SCALING.md). With --max-items the log is counted again under each bound
below its item count: what is held, how many evictions, and what they cost. With
--copies N the log is counted N times over, each copy's members and items renamed:
a catalogue N times the log's, with its co-occurrence, so that an eviction at the
default bound is measured, not extrapolated (without the memory, which tracemalloc
would take minutes to count).
"""
from __future__ import annotations

import argparse
import copy
import gc
import logging
import time
import tracemalloc

from bench.bench_log import bench_lines
from stream.settings import Settings


def item_stats_size(lines: list[bytes], settings: Settings, trace: bool = True, copies: int = 1) -> dict:
    """The events of `lines` applied to member states and counted by one ItemStats, as
    the processor does; the bytes allocated by stream/domain/item_stats.py and held at
    the end (tracemalloc: the item ids themselves are the events' strings, not counted;
    `trace` false: not measured, 0), the evictions and their seconds (the slowest, all),
    the seconds of the whole count (applying the events included) and of its slowest
    event. An eviction's seconds are its own; the sweep of the rows after it is spread
    over the events that follow (in the count's seconds and events). What is held is
    counted once the last sweep has ended.
    `copies` > 1: the events that many times over, copy c's member and item ids
    suffixed with ~c (c > 0)."""
    import stream.domain.item_stats as item_stats_module
    from stream.domain.member_state import MemberState, apply_event
    from stream.domain.parsing import Rejected, parse_event
    from stream.processing.member_cache import tune_gc
    from stream.processing.recommender import item_stats_of

    events = [e for e in (parse_event(line, None, 1 << 20) for line in lines) if not isinstance(e, Rejected)]
    states: dict[str, MemberState] = {}
    stats = item_stats_of(settings)
    took: list[float] = []
    evict = stats._evict

    def timed_evict() -> None:
        t = time.perf_counter()
        evict()
        took.append(time.perf_counter() - t)

    stats._evict = timed_evict
    size, thresholds = 0, gc.get_threshold()
    tune_gc(settings.gc_threshold)  # as the worker collects
    if trace:
        tracemalloc.start()
    slowest, clock, began = 0.0, time.perf_counter, time.perf_counter()
    try:
        for e in _copied(events, copies):
            s = states.get(e.member_id)
            if s is None:
                s = states[e.member_id] = MemberState(e.member_id, 0)
            apply_event(s, e, settings.sequence_length)
            t = clock()
            stats.observe_newest(s, e.ts, e.category)
            slowest = max(slowest, clock() - t)
        counting = clock() - began
        stats._swept(len(stats._sweep))  # the last eviction's sweep ended, as the next events would
        neighbours = sum(len(row.numbers) for row in stats.pairs.values())
        if trace:
            held = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(True, item_stats_module.__file__)])
            size = sum(stat.size for stat in held.statistics("filename"))
    finally:
        gc.set_threshold(*thresholds)
        if trace:
            tracemalloc.stop()
    return {"events": len(events) * copies, "items_counted": len(stats.popularity), "items_paired": len(stats.ids),
            "neighbours": neighbours, "bytes": size, "kept": settings.item_stats_kept,
            "max_items": settings.item_stats_max_items, "evictions": len(took),
            "eviction_s_max": max(took, default=0.0), "eviction_s": sum(took),
            "count_s": counting, "event_s_max": slowest}


def _copied(events: list, copies: int):
    """The events, then `copies` - 1 renamed copies of them, one after the other."""
    yield from events
    for c in range(1, copies):
        for e in events:
            renamed = copy.copy(e)
            renamed.member_id, renamed.event_id = f"{e.member_id}~{c}", f"{e.event_id}~{c}"
            renamed.item_id = None if e.item_id is None else f"{e.item_id}~{c}"
            yield renamed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-items", type=int, nargs="*", default=[],
                        help="also count under these item_stats_max_items bounds")
    parser.add_argument("--copies", type=int, default=1,
                        help="count the log this many times over, members and items renamed per copy")
    args = parser.parse_args()
    if args.copies < 1:
        parser.exit(2, "item_stats_size: --copies must be at least 1\n")
    logging.disable(logging.CRITICAL)
    settings = Settings()
    lines = bench_lines(settings)
    copies = f" counted {args.copies} times over (members and items renamed per copy)" if args.copies > 1 else ""
    print(f"item statistics after the bench log{copies}, one worker (item_stats_kept {settings.item_stats_kept}: "
          f"rows pruned to it at twice that); eviction times from a second pass without tracemalloc")
    print(f"{'max items':>10} {'items counted':>14} {'items paired':>13} {'neighbours kept':>16} {'MB held':>8} "
          f"{'B per paired item':>18} {'B per neighbour':>16} {'evictions':>10} {'mean ms':>8} {'slowest ms':>11} "
          f"{'count s':>8} {'slowest event ms':>17}")
    for bound in [settings.item_stats_max_items, *args.max_items]:
        bounded = settings.model_copy(update={"item_stats_max_items": bound})
        timed = item_stats_size(lines, bounded, trace=False, copies=args.copies)
        r = item_stats_size(lines, bounded) if args.copies == 1 else timed
        held = (f"{r['bytes'] / 1e6:>8.1f} {r['bytes'] / max(1, r['items_paired']):>18,.0f} "
                f"{r['bytes'] / max(1, r['neighbours']):>16,.0f}") if r["bytes"] else f"{'-':>8} {'-':>18} {'-':>16}"
        print(f"{bound:>10,} {r['items_counted']:>14,} {r['items_paired']:>13,} {r['neighbours']:>16,} "
              f"{held} {timed['evictions']:>10,} "
              f"{1000 * timed['eviction_s'] / max(1, timed['evictions']):>8.1f} "
              f"{1000 * timed['eviction_s_max']:>11.1f} {timed['count_s']:>8.1f} {1000 * timed['event_s_max']:>17.1f}")


if __name__ == "__main__":
    main()
