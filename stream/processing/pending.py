"""The members whose newest state awaits scoring, oldest first.

A member joins when an event changes their sequence and leaves when a
scoring request takes them; an event meanwhile only moves their newest state
in, so a member with ten events between two scorings is scored once. The
flag `MemberState.pending_score` goes to the changelog with the state, so a
restart finds them again (stream/processing/recovery.py).
"""
from __future__ import annotations

import asyncio
import time
from itertools import islice
from typing import Iterable, Iterator

from stream.domain.member_state import MemberState


class PendingScoring:
    def __init__(self) -> None:
        self._states: dict[str, MemberState] = {}
        self._since: dict[str, float] = {}
        self.ready = asyncio.Event()  # set while any member is pending
        # Seconds members waited before a request took them (a Prometheus summary: sum, count).
        self.wait = [0.0, 0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._states)

    def __len__(self) -> int:
        return len(self._states)

    def mark(self, state: MemberState) -> None:
        """The member's newest state awaits scoring (a member already pending keeps its place)."""
        state.pending_score = True
        if state.member_id not in self._states:
            self._states[state.member_id] = state
            self._since[state.member_id] = time.monotonic()
        self.ready.set()

    def take(self, members: Iterable[str], now: float) -> list[MemberState]:
        """Those of `members` that are pending, out of the queue (the others are scored
        already, or in flight); their time pending counted at `now`."""
        taken = []
        for member in members:
            state = self._states.pop(member, None)
            if state is not None:
                taken.append(state)
                self.wait[0] += now - self._since.pop(member)
                self.wait[1] += 1
        if not self._states:
            self.ready.clear()
        return taken

    def oldest(self, n: int) -> list[str]:
        """The `n` members pending longest."""
        return list(islice(self._states, n))

    def discard(self, member: str) -> None:
        """Forget a member (its partition was revoked)."""
        self._states.pop(member, None)
        self._since.pop(member, None)
