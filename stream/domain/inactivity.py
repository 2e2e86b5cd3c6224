"""Event-time watermarks and the inactivity checkpoints they trigger.

The watermark of a partition is the largest event time seen on it. Each
member has one pending checkpoint at a time: newest event + N days of
silence. When a partition's watermark passes it, the member is re-scored
without having sent anything. Entries made stale by a newer event are
skipped when they come due (lazy deletion from a heap per partition).

Late events (more than the allowed lateness behind the watermark: a
backfill, a shop service that was down) schedule their member's checkpoint
as any other, except one the watermark has passed already: that one is
deferred until the watermark has moved on by the allowed lateness, and then
decided once, at the latest checkpoint the silence has reached (`catch_up`).
A member whose history arrives late, event by event, is decided once, after
the history, and not at each event (docs/RELIABILITY.md, late data).
"""
from __future__ import annotations

import heapq
from typing import Iterable, Optional

from stream.domain.event_time import DAY_MS
from stream.domain.member_state import MemberState


# A heap entry: (due time, member, checkpoint index, the member's newest event time
# when it was scheduled). Due time = that event time + the checkpoint's silence, or
# later for a deferred one.
Entry = tuple[int, str, int, int]


class InactivitySchedule:
    def __init__(self, checkpoints_days: Iterable[int], allowed_lateness_ms: int = DAY_MS):
        self.days = sorted(checkpoints_days)
        self.offsets_ms = [d * DAY_MS for d in self.days]
        self.allowed_lateness_ms = allowed_lateness_ms
        self.watermarks: dict[int, int] = {}
        self._heaps: dict[int, list[Entry]] = {}

    def knows(self, partition: int) -> bool:
        return partition in self._heaps

    def rebuild(self, partition: int, states: Iterable[MemberState], watermark: Optional[int] = None) -> None:
        """After recovery: pending checkpoints from the table, and the watermark stored
        with the input offset the restart goes on from (None: none stored, so the newest
        event of the table; states a crash left ahead of that offset would put it ahead of
        the records re-applied, and checkpoints would fire before their time)."""
        self._heaps[partition] = []
        newest = 0
        for state in states:
            newest = max(newest, state.last_ts)
            self.schedule(state)
        self.watermarks[partition] = newest if watermark is None else watermark

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._heaps.pop(p, None)
            self.watermarks.pop(p, None)

    def is_late(self, partition: int, ts_ms: int) -> bool:
        """More than the allowed lateness behind the partition's watermark."""
        return ts_ms < self.watermarks.get(partition, 0) - self.allowed_lateness_ms

    def schedule(self, state: MemberState, late: bool = False) -> None:
        """The member's next checkpoint; `late`: scheduled by a late event, so one the
        watermark has passed already is deferred (see above)."""
        idx = state.check_index
        if idx < len(self.offsets_ms):
            due = state.last_ts + self.offsets_ms[idx]
            if late:
                wm = self.watermarks.get(state.partition, 0)
                if due <= wm:
                    due = wm + self.allowed_lateness_ms
            heap = self._heaps.setdefault(state.partition, [])
            heapq.heappush(heap, (due, state.member_id, idx, state.last_ts))

    def advance(self, partition: int, ts_ms: int) -> int:
        wm = max(self.watermarks.get(partition, 0), ts_ms)
        self.watermarks[partition] = wm
        return wm

    def pop_due(self, partition: int) -> list[Entry]:
        """Entries whose time the watermark has passed, in (time, member) order."""
        heap = self._heaps.get(partition)
        wm = self.watermarks.get(partition, 0)
        due = []
        while heap and heap[0][0] <= wm:
            due.append(heapq.heappop(heap))
        return due

    def is_current(self, state: MemberState, entry: Entry) -> bool:
        """The entry is the member's next checkpoint still (no newer event since)."""
        _, _, idx, since = entry
        return state.check_index == idx and state.last_ts == since

    def catch_up(self, state: MemberState, entry: Entry) -> int:
        """The checkpoint to decide for a current entry: its own, or for a deferred one
        the latest the member's silence has reached by the watermark."""
        due, _, idx, since = entry
        if due == since + self.offsets_ms[idx]:
            return idx
        wm = self.watermarks.get(state.partition, 0)
        while idx + 1 < len(self.offsets_ms) and since + self.offsets_ms[idx + 1] <= wm:
            idx += 1
        return idx

    def pending(self, partition: int) -> int:
        return len(self._heaps.get(partition, ()))
