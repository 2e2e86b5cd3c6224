"""A newly owned partition's inactivity schedule and pending members, rebuilt
from the members table (recovered from its changelog) on the partition's first
record."""
from __future__ import annotations

from typing import MutableMapping

from stream.domain.inactivity import InactivitySchedule
from stream.domain.member_state import MemberState
from stream.processing import keys
from stream.processing.pending import PendingScoring


def recover_partition(partition: int, store: MutableMapping[bytes, bytes], schedule: InactivitySchedule,
                      cache: dict[str, MemberState], pending: PendingScoring) -> None:
    """Every stored member of `partition` back in the schedule; those stored as awaiting
    scoring back in the cache and the pending queue."""
    states = (MemberState.from_bytes(raw) for key, raw in list(store.items())
              if not keys.is_bookkeeping(key))
    mine = [s for s in states if s.partition == partition]
    schedule.rebuild(partition, mine)
    for state in mine:
        if state.pending_score and state.member_id not in cache:
            cache[state.member_id] = state
            pending.mark(state)
