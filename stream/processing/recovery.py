"""A newly owned partition's inactivity schedule and pending members, rebuilt
from the members table (recovered from its changelog) on the partition's first
record."""
from __future__ import annotations

import logging
from typing import MutableMapping, Optional

from stream.domain.inactivity import InactivitySchedule
from stream.domain.member_state import MemberState
from stream.processing import keys
from stream.processing.pending import PendingScoring

log = logging.getLogger(__name__)


def recover_partition(partition: int, store: MutableMapping[bytes, bytes], schedule: InactivitySchedule,
                      cache: dict[str, MemberState], pending: PendingScoring,
                      pseudonym_prefix: Optional[str] = None) -> list[MemberState]:
    """Every stored member of `partition` back in the schedule; those stored as awaiting
    scoring back in the cache and the pending queue. Returns the partition's members.
    `pseudonym_prefix` (a pseudonymising worker's `<key id>.`): a state stored under any
    other id (a raw one, from before pseudonymisation was turned on, or another key's) is
    left where it is, so that nothing is ever sent under it."""
    mine, unreadable, foreign = [], 0, 0
    for key, raw in list(store.items()):
        if keys.is_bookkeeping(key):
            continue
        try:
            state = MemberState.from_bytes(raw)
        except Exception:  # noqa: BLE001 (its member's events are dead-lettered with the error)
            unreadable += 1
            continue
        if state.partition != partition:
            continue
        if pseudonym_prefix is not None and not state.member_id.startswith(pseudonym_prefix):
            foreign += 1
            continue
        mine.append(state)
    if foreign:
        log.warning("partition %d: %d stored member states are not under this key's pseudonyms and stay "
                    "unused (pseudonymisation turned on, or its key changed, over an existing table: "
                    "SECURITY.md, key rotation, says to start a new app id)", partition, foreign)
    if unreadable:
        log.warning("partition %d: %d stored member states could not be read; their members' "
                    "events go to the dead-letter topic", partition, unreadable)
    schedule.rebuild(partition, mine, keys.stored_watermark(store, partition))
    for state in mine:
        if state.pending_score and state.member_id not in cache:
            cache[state.member_id] = state
            pending.mark(state)
    return mine
