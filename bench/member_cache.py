"""What the worker's decoded member states cost: `python -m bench.member_cache [MEMBERS ...]`
(default: 100000 500000).

The processor keeps every member it has touched decoded in memory (`MemberProcessor.
cache`, stream/processing/processor.py) beside the store's serialised copy, and
drops them only when their partition is revoked; a recovery caches only the members
awaiting scoring, so bench/recovery.py's bytes per recovered member leave this out.
The states are real (the processor over the bench log in this process), cycled
under new member ids; for each size, in this process: the bytes allocated per member
for the serialised states with their keys (as the store holds them), then for the
same states decoded (as the cache holds them; tracemalloc over the first 50,000), the objects the garbage
collector then tracks per member, and how long one full collection takes (CPython
3.11 runs one, holding the event loop, when the long-lived objects have grown by a
quarter since the last, once 100 middle-generation collections have run under the
worker's `gc_threshold`). Prints a table; exit 0.
"""
from __future__ import annotations

import argparse
import gc
import logging
import sys
import time
import tracemalloc


def member_cache(seeds: list, members: int, traced: int = 50_000) -> dict:
    """`members` of the `seeds` states (MemberState), cycled under new ids: bytes
    allocated per member serialised and decoded (tracemalloc over the first `traced`),
    objects tracked per member decoded, and the seconds of one full collection with
    them all decoded."""
    from stream.domain.member_state import MemberState

    raw = [state.to_bytes() for state in seeds]
    store: dict[bytes, bytes] = {}
    cache: dict[str, MemberState] = {}

    def add(first: int, last: int) -> tuple[int, int]:
        """Members first..last-1 stored, then decoded; the bytes traced after each step."""
        for n in range(first, last):
            state = MemberState.from_bytes(raw[n % len(raw)])
            state.member_id = f"m{n}"
            store[state.member_id.encode()] = state.to_bytes()
        stored = tracemalloc.get_traced_memory()[0]
        for n in range(first, last):
            cache[f"m{n}"] = MemberState.from_bytes(store[f"m{n}".encode()])
        return stored, tracemalloc.get_traced_memory()[0]

    gc.collect()
    tracked, sample = len(gc.get_objects()), min(members, traced)
    tracemalloc.start()
    try:
        stored, decoded = add(0, sample)
    finally:
        tracemalloc.stop()
    add(sample, members)
    objects = len(gc.get_objects()) - tracked
    t = time.perf_counter()
    gc.collect()
    collection = time.perf_counter() - t
    return {"members": len(cache), "stored_b": stored / sample, "decoded_b": (decoded - stored) / sample,
            "objects": objects / members, "full_collection_s": collection}


def main() -> int:
    from bench.recovery import real_states
    from stream.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", type=int, nargs="*", default=[100_000, 500_000],
                        help="members to cache, one measure each")
    sizes = parser.parse_args().members
    if min(sizes, default=1) < 1:
        parser.exit(2, "member_cache: MEMBERS must be at least 1\n")
    logging.disable(logging.CRITICAL)
    seeds = real_states(Settings())
    print(f"decoded member states, the bench log's {len(seeds):,} members cycled under new ids, in this process")
    print(f"{'members':>10} {'B serialised':>13} {'B decoded':>10} {'objects':>8} {'full collection s':>18}")
    for members in sizes:
        r = member_cache(seeds, members)
        print(f"{members:>10,} {r['stored_b']:>13,.0f} {r['decoded_b']:>10,.0f} {r['objects']:>8.1f} "
              f"{r['full_collection_s']:>18.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
