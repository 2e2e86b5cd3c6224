"""A member's rolling state: the last N events plus counters and policy state.

This is the value of the members table. `apply_event` is the only way an
event changes it; the policies own the fields under "policy state".
Serialised with orjson under short keys, one changelog record per member
per batch.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Optional

import orjson

from .schemas import EVENT_TYPES, ShopEvent

TYPE_CODE = {t: i + 1 for i, t in enumerate(EVENT_TYPES)}
PURCHASE = TYPE_CODE["purchase"]
VISIT_GAP_MS = 30 * 60 * 1000  # a purchase without a session id starts a new visit after this
RECENT_VISITS = 8


def event_hash(event_id: str) -> int:
    """64-bit digest of an event id: dedup without storing ids of up to 128 chars."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")


@dataclass(slots=True)
class Visit:
    """A purchase visit (an order): first event id, start time, spend so far."""
    event_id: str
    ts: int
    session: Optional[str]
    spend: float
    flagged: bool = False


@dataclass(slots=True)
class MemberState:
    member_id: str
    partition: int
    # Rolling sequence, oldest first, at most `sequence_length` long.
    items: list[str] = field(default_factory=list)
    types: list[int] = field(default_factory=list)
    times: list[int] = field(default_factory=list)  # event time, epoch ms
    hashes: list[int] = field(default_factory=list)
    last_event_id: str = ""
    # Counters over the whole history.
    first_ts: int = 0
    n_events: int = 0
    purchase_visits: int = 0
    monetary: float = 0.0
    cart_open: int = 0  # items added and neither removed nor bought since
    dropped_ts: int = 0  # time of the newest event that left the sequence (0: none yet)
    visits: list[Visit] = field(default_factory=list)  # recent purchase visits
    # Policy state.
    check_index: int = 0  # next inactivity checkpoint to run
    episode: Optional[str] = None  # alert_id of the open churn-risk episode
    churned: bool = False
    reactivated: bool = False
    stage: Optional[str] = None
    tier: Optional[str] = None
    churn_probability: Optional[float] = None
    recommendations: list[tuple[str, float]] = field(default_factory=list)
    recommendations_fallback: bool = False

    @property
    def last_ts(self) -> int:
        return self.times[-1]

    def is_duplicate(self, event_id: str) -> bool:
        return event_hash(event_id) in self.hashes

    def to_bytes(self) -> bytes:
        return orjson.dumps({
            "m": self.member_id, "p": self.partition, "it": self.items, "ty": self.types,
            "t": self.times, "h": self.hashes, "l": self.last_event_id, "f": self.first_ts,
            "n": self.n_events, "pv": self.purchase_visits, "mo": round(self.monetary, 4),
            "c": self.cart_open, "d": self.dropped_ts,
            "v": [[v.event_id, v.ts, v.session, round(v.spend, 4), v.flagged] for v in self.visits],
            "ci": self.check_index, "e": self.episode, "ch": self.churned, "r": self.reactivated,
            "s": self.stage, "ti": self.tier, "pc": self.churn_probability,
            "rc": self.recommendations, "rf": self.recommendations_fallback,
        })

    @classmethod
    def from_bytes(cls, raw: bytes) -> "MemberState":
        d = orjson.loads(raw)
        return cls(
            member_id=d["m"], partition=d["p"], items=d["it"], types=d["ty"], times=d["t"],
            hashes=d["h"], last_event_id=d["l"], first_ts=d["f"], n_events=d["n"],
            purchase_visits=d["pv"], monetary=d["mo"], cart_open=d["c"], dropped_ts=d["d"],
            visits=[Visit(*v) for v in d["v"]], check_index=d["ci"], episode=d["e"],
            churned=d["ch"], reactivated=d["r"], stage=d["s"], tier=d["ti"],
            churn_probability=d["pc"], recommendations=[tuple(x) for x in d["rc"]],
            recommendations_fallback=d["rf"])


def apply_event(state: MemberState, event: ShopEvent, max_len: int) -> Optional[Visit]:
    """Add one event; returns the purchase visit it belongs to, if it is a purchase.

    Events are applied in partition order. An event older than the newest one
    is kept in arrival order with a zero gap: the sequence is what happened
    as the shop reported it, and event time never runs backwards in it.
    """
    ts = event.ts
    if state.times:
        ts = max(ts, state.times[-1])
    else:
        state.first_ts = ts
    state.items.append(event.item_id)
    state.types.append(TYPE_CODE[event.type])
    state.times.append(ts)
    state.hashes.append(event_hash(event.event_id))
    if len(state.items) > max_len:
        state.dropped_ts = state.times[0]
        del state.items[0], state.types[0], state.times[0], state.hashes[0]
    state.last_event_id = event.event_id
    state.n_events += 1
    visit = None
    if event.type == "add_to_cart":
        state.cart_open += event.quantity
    elif event.type == "remove_from_cart":
        state.cart_open = max(0, state.cart_open - event.quantity)
    elif event.type == "purchase":
        state.cart_open = 0
        amount = (event.price or 0.0) * event.quantity
        state.monetary += amount
        visit = state.visits[-1] if state.visits else None
        same = visit is not None and (
            (event.session_id is not None and event.session_id == visit.session)
            or (event.session_id is None and visit.session is None and ts - visit.ts < VISIT_GAP_MS))
        if same:
            visit.spend += amount
        else:
            visit = Visit(event.event_id, ts, event.session_id, amount)
            state.visits.append(visit)
            del state.visits[:-RECENT_VISITS]
            state.purchase_visits += 1
    return visit


def model_inputs(state: MemberState, max_len: int):
    """(item ids, type codes, gaps in seconds) of the rolling sequence, left-padded."""
    n = len(state.items)
    pad = max_len - n
    times = state.times
    gaps = [0.0] * pad
    if n:
        # As in training: the oldest kept event's gap reaches back to the event before it.
        gaps.append((times[0] - state.dropped_ts) / 1000.0 if state.dropped_ts else 0.0)
        gaps.extend((times[i] - times[i - 1]) / 1000.0 for i in range(1, n))
    items = [b""] * pad + [i.encode() for i in state.items]
    types = [0] * pad + state.types
    return items, types, gaps
