"""The at-least-once commit protocol, in one place.

Outputs go out at once, as each batch or scoring is decided (`publish`).
Member states and input offsets are a record cache, like Kafka Streams'
commit interval: they reach the members changelog at most every
`changelog_flush_s` (or once `changelog_flush_members` members are dirty), so
a member touched by several batches and scorings in between is written
once, and neither the agent nor the scoring tasks wait for changelog round
trips. A commit (`Commit.commit`) then runs these steps, in this order:

  0. a consistent cut: under the agent's `applying` lock, once every batch
     submitted is decided, the dirty states, the input offsets they reach
     and the outputs sent so far are taken out of the cache (and the states
     written to the local store); each input offset with the partition's
     watermark at it;
  1. every output of the cut is delivered;
  2. the states of the cut go to the changelog;
  3. once they are delivered, in each partition, the input offset they
     reach (so in the changelog an input offset always follows the states
     it covers, even where a batch of states was split, or sent again after
     a retriable error and overtaken: stream/kafka/sender.py);
  4. where the broker needs it, a lone end marker closes each written
     partition (docs/broker.md, quirk 2).

So whatever a restart recovers is a consistent prefix: the input cursor
re-applies from the offset it holds, and the outputs of what it re-applies
go out again with the same ids (at-least-once). A failed delivery fails the
commit before any later step: the offsets do not move past outputs that
were not delivered. Partitions are committed before they are revoked, and
everything at shutdown.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable, Mapping, MutableMapping, Optional

from stream.domain.member_state import MemberState
from stream.processing import keys
from stream.processing.records import BatchResult


@dataclass
class Cut:
    """What one commit writes."""
    states: dict[str, MemberState] = field(default_factory=dict)
    inputs: dict[int, int] = field(default_factory=dict)
    sent: list = field(default_factory=list)  # delivery futures of the outputs
    records: list[tuple[bytes, bytes, int]] = field(default_factory=list)  # key, value, partition
    offsets: list[tuple[bytes, bytes, int]] = field(default_factory=list)  # the input offsets, as records


class Commit:
    """`sender.send(messages)` takes (topic, key, value, partition or None, headers or
    None) tuples and returns one future per record batch, done once it is delivered
    (stream/kafka/sender.py)."""

    def __init__(self, sender, store: MutableMapping[bytes, bytes], changelog_topic: str, *,
                 applying: asyncio.Lock, drained: Callable, in_flight: Callable[[], int],
                 watermarks: Mapping[int, int], flush_members: int,
                 end_marker: Optional[Callable[[int, int], tuple[bytes, bytes]]] = None,
                 after_cut: Callable[[dict[str, MemberState]], None] = lambda states: None) -> None:
        """`drained`: awaits every batch submitted so far decided and published;
        `in_flight`: batches submitted and not yet published; `watermarks`: partition ->
        event-time watermark (for the end markers); `after_cut`: called with the states
        of each cut once they are in the store, still under `applying` (the bound on the
        decoded states, stream/processing/member_cache.py)."""
        self.sender, self.store, self.changelog_topic = sender, store, changelog_topic
        self.applying, self.drained, self.in_flight = applying, drained, in_flight
        self.watermarks, self.flush_members, self.end_marker = watermarks, flush_members, end_marker
        self.after_cut = after_cut
        self.states: dict[str, MemberState] = {}
        self.inputs: dict[int, int] = {}
        self.sent: list = []
        self.due = asyncio.Event()  # set when enough members are dirty to commit early
        self.committing = asyncio.Lock()

    async def publish(self, result: BatchResult) -> None:
        """A decided batch or scoring: its outputs sent now, its states and input offsets
        kept for the next commit."""
        self.sent += await self.sender.send((o.topic, o.key, o.value, None, o.headers) for o in result.outputs)
        self.states.update(result.changed)
        self.inputs.update(result.inputs)
        if len(self.states) >= self.flush_members:
            self.due.set()

    def backlog(self) -> int:
        """Members, input offsets and outputs not yet committed or being committed."""
        return (len(self.states) + len(self.inputs) + len(self.sent) + self.committing.locked()
                + self.in_flight())

    async def commit(self) -> None:
        """Steps 0 to 4 above. Takes `applying`, so the caller must not hold it."""
        async with self.committing:
            async with self.applying:
                await self.drained()
                cut = self._cut()                        # 0
                self.after_cut(cut.states)
            if cut.sent:
                await asyncio.gather(*cut.sent)          # 1
            if not cut.records and not cut.offsets:
                return
            await self._deliver(cut.records)             # 2
            await self._deliver(cut.offsets)             # 3
            if self.end_marker is not None:              # 4
                written = sorted({p for _, _, p in cut.records + cut.offsets})
                await self._deliver([(*self.end_marker(p, self.watermarks.get(p, 0)), p) for p in written])

    def _cut(self) -> Cut:
        cut = Cut(self.states, self.inputs, self.sent)
        self.states, self.inputs, self.sent = {}, {}, []
        self.due.clear()
        cut.records = [(member.encode(), state.to_bytes(), state.partition)
                       for member, state in cut.states.items()]
        # After the partition's states: once it is in the changelog, they are too.
        # The watermarks stand where the input offsets do: every batch submitted is decided.
        cut.offsets = [(keys.input_key(p), keys.input_value(offset, self.watermarks.get(p)), p)
                       for p, offset in cut.inputs.items()]
        for key, value, _ in cut.records + cut.offsets:
            self.store[key] = value
        return cut

    async def _deliver(self, records: list[tuple[bytes, bytes, int]]) -> None:
        """Changelog records, one record batch per partition, delivered."""
        if not records:
            return
        await asyncio.gather(*await self.sender.send(
            (self.changelog_topic, key, value, partition, None) for key, value, partition in records))
