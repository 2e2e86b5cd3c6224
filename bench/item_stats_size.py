"""Memory of the item statistics (trending popularity and co-occurrence) after the bench
log, as one worker counts them: `python -m bench.item_stats_size`.

The statistics are per worker and never pruned (stream/domain/item_stats.py): each
worker holds every item its members ever paired, whatever partitions it owns, so
they grow with the catalogue, not with the members (docs/SCALING.md).
"""
from __future__ import annotations

import argparse
import logging
import tracemalloc

from bench.bench_log import bench_lines
from stream.settings import Settings


def item_stats_size(lines: list[bytes], settings: Settings) -> dict:
    """The events of `lines` applied to member states and counted by one ItemStats, as
    the processor does; the bytes allocated by stream/domain/item_stats.py and held at
    the end (tracemalloc: the item ids themselves are the events' strings, not counted)."""
    import stream.domain.item_stats as item_stats_module
    from stream.domain.member_state import MemberState, apply_event
    from stream.domain.parsing import Rejected, parse_event
    from stream.processing.recommender import item_stats_of

    events = [e for e in (parse_event(line, None, 1 << 20) for line in lines) if not isinstance(e, Rejected)]
    states: dict[str, MemberState] = {}
    tracemalloc.start()
    try:
        stats = item_stats_of(settings)
        for e in events:
            s = states.get(e.member_id)
            if s is None:
                s = states[e.member_id] = MemberState(e.member_id, 0)
            apply_event(s, e, settings.sequence_length)
            stats.observe_newest(s, e.ts, e.category)
        held = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, item_stats_module.__file__)])
        size = sum(stat.size for stat in held.statistics("filename"))
    finally:
        tracemalloc.stop()
    neighbours = sum(len(row.numbers) for row in stats.pairs.values())
    return {"events": len(events), "items_counted": len(stats.popularity), "items_paired": len(stats.ids),
            "neighbours": neighbours, "bytes": size, "kept": settings.item_stats_kept}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    logging.disable(logging.CRITICAL)
    settings = Settings()
    r = item_stats_size(bench_lines(settings), settings)
    per_item = r["bytes"] / max(1, r["items_paired"])
    per_neighbour = r["bytes"] / max(1, r["neighbours"])
    print(f"item statistics after {r['events']:,} valid events of the bench log, one worker "
          f"(item_stats_kept {r['kept']}: rows pruned to it at twice that)")
    print(f"{'items counted':>14} {'items paired':>13} {'neighbours kept':>16} {'MB held':>8} "
          f"{'B per paired item':>18} {'B per neighbour':>16}")
    print(f"{r['items_counted']:>14,} {r['items_paired']:>13,} {r['neighbours']:>16,} {r['bytes'] / 1e6:>8.1f} "
          f"{per_item:>18,.0f} {per_neighbour:>16,.0f}")


if __name__ == "__main__":
    main()
