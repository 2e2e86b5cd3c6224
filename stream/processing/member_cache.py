"""The worker's memory of member states: the bound on those it keeps decoded
(`member_cache_max`), and the garbage collector's setting (`gc_threshold`).

The store (the members table) holds every member's state serialised; the
processor keeps the states it touched decoded in `MemberProcessor.cache`, about
3.5 kB each against 0.5 kB serialised, and every one of them is objects the
garbage collector walks (docs/SCALING.md). Past the bound, a commit drops the
least recently written members from the cache; their next event or checkpoint
decodes them from the store again.

A member may leave only once its store copy is its newest state: right after a
commit's cut (every batch submitted decided, the dirty states written to the
store), a member that is neither pending nor in a scoring request (its
`pending_score` flag) nor in a scoring answer still on its way to the commit
(`publishing`). What it loses is what lives in memory only: the churn at its
checkpoints from its last scoring (its checkpoints are then scored by request)
and the items its last scoring predicted (anomaly_policy judges its events
against them again once it is scored), as after a restart.
"""
from __future__ import annotations

import gc
from collections.abc import Container
from itertools import islice

from stream.domain.member_state import MemberState


def trim(cache: dict[str, MemberState], written: dict[str, MemberState], bound: int,
         publishing: Container[str]) -> int:
    """The states a cut `written` to the store to the cache's recent end; then, while
    the cache holds more than `bound` members (0: no bound), the least recently
    written that may leave (above) out. Returns how many left."""
    if not bound:
        return 0
    for member, state in written.items():
        if cache.get(member) is state:
            del cache[member]
            cache[member] = state
    over = len(cache) - bound
    if over <= 0:
        return 0
    leaving = list(islice((m for m, state in cache.items() if not state.pending_score and m not in publishing),
                          over))
    for member in leaving:
        del cache[member]
    return len(leaving)


def tune_gc(threshold: int) -> None:
    """Young-generation collections every `threshold` allocations instead of 700, and
    the older generations correspondingly rarer (settings.gc_threshold; 0: Python's
    defaults). The states of the members are millions of long-lived objects; the
    processor over the bench log ran 23-27k -> 33-36k events/s with 50,000."""
    if threshold:
        gc.set_threshold(threshold, 20, 100)
