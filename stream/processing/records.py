"""What the processing core takes and gives: input records, outgoing messages,
and the result of a batch or a scoring."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

from stream.domain.member_state import MemberState


@dataclass(slots=True)
class Record:
    """One `shop.events` record: where it came from, and its bytes."""
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]


@dataclass(slots=True)
class Outgoing:
    topic: str
    key: Optional[bytes]  # None only for a dead letter whose original had no key
    value: Optional[bytes]
    headers: Optional[list] = None


@dataclass
class BatchResult:
    outputs: list[Outgoing] = field(default_factory=list)
    changed: dict[str, MemberState] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    # Input partition -> next input offset, once this result is delivered (the agent's cursor).
    inputs: dict[int, int] = field(default_factory=dict)
