"""Event-time watermarks and the inactivity checkpoints they trigger.

The watermark of a partition is the largest event time seen on it. Each
member has one pending checkpoint at a time: newest event + N days of
silence. When a partition's watermark passes it, the member is re-scored
without having sent anything. Entries made stale by a newer event are
skipped when they come due (lazy deletion from a heap per partition).
"""
from __future__ import annotations

import heapq
from typing import Iterable

from stream.domain.event_time import DAY_MS
from stream.domain.member_state import MemberState


class InactivitySchedule:
    def __init__(self, checkpoints_days: Iterable[int]):
        self.days = sorted(checkpoints_days)
        self.offsets_ms = [d * DAY_MS for d in self.days]
        self.watermarks: dict[int, int] = {}
        self._heaps: dict[int, list[tuple[int, str, int]]] = {}

    def knows(self, partition: int) -> bool:
        return partition in self._heaps

    def rebuild(self, partition: int, states: Iterable[MemberState]) -> None:
        """After recovery: pending checkpoints and the watermark from the table."""
        self._heaps[partition] = []
        self.watermarks[partition] = 0
        for state in states:
            self.watermarks[partition] = max(self.watermarks[partition], state.last_ts)
            self.schedule(state)

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._heaps.pop(p, None)
            self.watermarks.pop(p, None)

    def schedule(self, state: MemberState) -> None:
        idx = state.check_index
        if idx < len(self.offsets_ms):
            heap = self._heaps.setdefault(state.partition, [])
            heapq.heappush(heap, (state.last_ts + self.offsets_ms[idx], state.member_id, idx))

    def advance(self, partition: int, ts_ms: int) -> int:
        wm = max(self.watermarks.get(partition, 0), ts_ms)
        self.watermarks[partition] = wm
        return wm

    def pop_due(self, partition: int) -> list[tuple[int, str, int]]:
        """Entries whose time the watermark has passed, in (time, member) order."""
        heap = self._heaps.get(partition)
        wm = self.watermarks.get(partition, 0)
        due = []
        while heap and heap[0][0] <= wm:
            due.append(heapq.heappop(heap))
        return due

    def is_current(self, state: MemberState, due_ms: int, idx: int) -> bool:
        return state.check_index == idx and state.last_ts + self.offsets_ms[idx] == due_ms

    def pending(self, partition: int) -> int:
        return len(self._heaps.get(partition, ()))
