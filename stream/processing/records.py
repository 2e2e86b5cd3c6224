"""What the processing core takes and gives: input records, outgoing messages,
and the result of a batch or a scoring."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

from stream.domain.member_state import MemberState
from stream.scoring.scores import Row


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


@dataclass(slots=True)
class EventStep:
    """Pass 1's record of an applied event, for pass 2 (stream/processing/processor.py)."""
    state: MemberState
    ts: int
    started_visit: bool
    purchase_visits: int
    monetary: float
    event_id: str
    n_events: int
    backdated: bool = False  # older than the member's newest event
    value: tuple = ()  # member_value.inputs_of the state after the event


@dataclass(slots=True)
class Prepared:
    """A batch after pass 1, awaiting its checkpoint scores and pass 2."""
    out: BatchResult
    steps: list
    rows: list[Row]
    touched: dict[str, MemberState]
    explain: int = 0  # checkpoints whose churn was known and may alert: explained all the same
