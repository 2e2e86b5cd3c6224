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
(`publishing`). What it loses is what lives in memory only, as after a
restart: the churn at its checkpoints from its last scoring (its checkpoints
are then scored by request), and its `Surprise`: the items its last scoring
predicted and the run of hits and misses behind the UNLIKELY_SEQUENCE anomaly,
which starts again from nothing (anomaly_policy: 20 scored events before it can
fire). A member whose record failed in the middle (PROCESSING_FAILED) keeps
what that record changed only while it stays decoded, as before a restart.
"""
from __future__ import annotations

import gc
from collections.abc import Container
from itertools import islice

from stream.domain.member_state import MemberState


SCAN = 4096  # members looked at past the number to drop, per trim


def trim(cache: dict[str, MemberState], written: dict[str, MemberState], bound: int,
         publishing: Container[str], scan: int = SCAN) -> int:
    """The states a cut `written` to the store to the cache's recent end; then, while
    the cache holds more than `bound` members (0: no bound), the least recently
    written or decoded that may leave (above) out. Busy members met on the way (in
    use: pending, in a request, being published) go to the recent end too, and at
    most `scan` of them per call: when nearly every member is busy (a Triton
    outage keeps every touched member pending) a trim costs O(scan), not O(cache),
    and the cache stays over its bound until they are scored. Returns how many left."""
    if not bound:
        return 0
    for member, state in written.items():
        if cache.get(member) is state:
            del cache[member]
            cache[member] = state
    over = len(cache) - bound
    if over <= 0:
        return 0
    left = 0
    for member, state in list(islice(cache.items(), over + scan)):
        if left == over:
            break
        del cache[member]
        if state.pending_score or member in publishing:
            cache[member] = state
        else:
            left += 1
    return left


def tune_gc(threshold: int) -> None:
    """Young-generation collections every `threshold` allocations instead of 700, and
    the older generations correspondingly rarer (settings.gc_threshold; 0: Python's
    defaults). The states of the members are millions of long-lived objects; the
    processor over the bench log ran 23-27k -> 33-36k events/s with 50,000."""
    if threshold:
        gc.set_threshold(threshold, 20, 100)
