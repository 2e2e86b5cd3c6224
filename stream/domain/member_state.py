"""A member's rolling state: the last N events plus counters and policy state.

This is the value of the members table. `apply_event` is the only way an
event changes it; the policies own the fields under "policy state".
Serialised in a compact binary layout (`encode_state`), one changelog record
per member per batch.
"""
from __future__ import annotations

import bisect
import hashlib
import struct
from itertools import accumulate, repeat
from operator import sub, truediv
from dataclasses import dataclass, field
from typing import Optional

import orjson

from stream.domain.parsing import Event
from stream.contract.schemas import EVENT_TYPES, ShopEvent

TYPE_CODE = {t: i + 1 for i, t in enumerate(EVENT_TYPES)}
PURCHASE = TYPE_CODE["purchase"]
VISIT_GAP_MS = 30 * 60 * 1000  # a purchase without a session id starts a new visit after this
RECENT_VISITS = 8


def event_hash(event_id: str) -> int:
    """32-bit digest of an event id: dedup without storing ids of up to 128 chars.
    A new event is mistaken for a duplicate with probability 50 / 2**32 (one
    in 86 million events), the price of a state under 1 kB."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=4).digest(), "big")


@dataclass(slots=True)
class Visit:
    """A purchase visit (an order): first event id, start time, spend so far."""
    event_id: str
    ts: int
    session: Optional[str]
    spend: float
    flagged: bool = False


@dataclass(slots=True)
class Surprise:
    """The member's events that the model's top-K predicted, and the run of misses."""
    predicted: frozenset = frozenset()
    trials: int = 0
    hits: int = 0
    run: int = 0  # misses since the last hit
    raised_run: bool = False  # this run raised its anomaly
    raised_ts: int = -(1 << 62)  # event time of the last anomaly of this kind


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
    last_offset: int = -1  # shop.events offset of the newest applied event (on `partition`)
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
    pending_score: bool = False  # touched since last scored (re-scored after a restart)
    # In memory only (not in the changelog): churn probability at each inactivity
    # checkpoint, scored with the sequence as it was after event number `[0]`; valid
    # while `n_events` is still that (the member stayed silent). None: unknown.
    churn_at: Optional[tuple[int, list[float]]] = field(default=None, compare=False)
    # In memory only: the member's events against the model's top-K at their last
    # scoring (anomaly_policy.on_event): None until they were scored.
    surprise: Optional["Surprise"] = field(default=None, compare=False)

    @property
    def last_ts(self) -> int:
        return self.times[-1]

    def known_churn_at(self) -> Optional[list[float]]:
        """The churn at each checkpoint if scored with the current sequence, else None."""
        known = self.churn_at
        return known[1] if known is not None and known[0] == self.n_events else None

    def is_duplicate(self, event_id: str) -> bool:
        return event_hash(event_id) in self.hashes

    def to_bytes(self) -> bytes:
        return encode_state(self)

    @classmethod
    def from_bytes(cls, raw: bytes) -> "MemberState":
        return decode_state(raw)


# --- the changelog value: a compact binary layout --------------------------------
# Every changelog record and every recovery pays for the size, so the state is
# packed, not JSON (JSON was 2.8 kB after 50 events, this is under 1 kB):
# strings once in a NUL-separated table (orjson if a string holds a NUL)
# referred to by one-byte indices, event times as the non-zero 32-bit
# millisecond deltas (escaped to 64 bits past 49 days) plus a bit mask, dedup hashes
# as 32 bits, scores and probabilities as scaled integers (exact for the
# rounded values the policies keep). Version byte first; others are refused.
CODEC_VERSION = 2
_ESC = 0xFFFFFFFF
_NONE16 = 0xFFFF
_STAGES = (None, "new", "active", "loyal", "at_risk", "churned", "reactivated")
_TIERS = (None, "bronze", "silver", "gold")
_HEAD = struct.Struct("<BHBqqIIdIqBBHBBBBBHHq")


def encode_state(s: MemberState) -> bytes:
    items, times, visits, recs = s.items, s.times, s.visits, s.recommendations
    n, n_visits, n_recs = len(items), len(visits), len(recs)
    rec_items = [i for i, _ in recs]
    strings = list(dict.fromkeys([s.member_id, s.last_event_id, s.episode or "", *items, *rec_items,
                                  *(v.event_id for v in visits), *(v.session or "" for v in visits)]))
    if len(strings) > 255:
        raise ValueError(f"member {s.member_id}: {len(strings)} distinct strings, limit 255")
    at = {text: i for i, text in enumerate(strings)}.__getitem__
    joined = "\x00".join(strings)
    table = joined.encode() if joined.count("\x00") == len(strings) - 1 else b"\x00J" + orjson.dumps(strings)
    deltas = list(map(sub, times[1:], times[:-1]))
    # Only the non-zero gaps are stored, and a bit mask of where they go: many events share
    # their timestamp (the lines of one order).
    mask = sum(1 << i for i, d in enumerate(deltas) if d).to_bytes((len(deltas) + 7) // 8, "little")
    deltas = [d for d in deltas if d]
    escaped = [d for d in deltas if d >= _ESC] if deltas and max(deltas) >= _ESC else []
    if escaped:
        deltas = [min(d, _ESC) for d in deltas]
    flags = s.churned | s.reactivated << 1 | s.recommendations_fallback << 2 | s.pending_score << 3
    pc = _NONE16 if s.churn_probability is None else round(s.churn_probability * 10000)
    head = _HEAD.pack(CODEC_VERSION, s.partition, n, times[0] if n else 0, s.first_ts, s.n_events,
                      s.purchase_visits, s.monetary, s.cart_open, s.dropped_ts, s.check_index,
                      flags | _STAGES.index(s.stage) << 4, pc, _TIERS.index(s.tier),
                      n_visits, n_recs, len(escaped), 1 if s.episode is not None else 0, len(table),
                      len(deltas), s.last_offset)
    return b"".join((
        head, table, bytes(map(at, items)), bytes(s.types), mask,
        struct.pack(f"<{len(deltas)}I{len(escaped)}q{n}I", *deltas, *escaped, *s.hashes),
        bytes(map(at, rec_items)), struct.pack(f"<{n_recs}I", *[round(x * 1e6) for _, x in recs]),
        bytes([at(v.event_id) for v in visits]), bytes([at(v.session or "") for v in visits]),
        bytes([(v.session is not None) | v.flagged << 1 for v in visits]),
        struct.pack(f"<{n_visits}q{n_visits}d", *[v.ts for v in visits], *[v.spend for v in visits]),
    ))


def decode_state(raw: bytes) -> MemberState:
    if not raw or raw[0] != CODEC_VERSION:
        raise ValueError(f"member state codec {raw[:1]!r}, expected version {CODEC_VERSION}")
    (_, partition, n, t0, first_ts, n_events, pv, monetary, cart, dropped, ci, flags, pc, tier,
     n_visits, n_recs, n_escaped, has_episode, table_len, n_gaps, last_offset) = _HEAD.unpack_from(raw, 0)
    pos = _HEAD.size
    table = raw[pos:pos + table_len]
    strings = orjson.loads(table[2:]) if table[:2] == b"\x00J" else table.decode().split("\x00")
    pos += table_len
    at = strings.__getitem__
    items = list(map(at, raw[pos:pos + n]))
    types = list(raw[pos + n:pos + 2 * n])
    pos += 2 * n
    k = n - 1 if n else 0
    mask_len = (k + 7) // 8
    mask = int.from_bytes(raw[pos:pos + mask_len], "little")
    pos += mask_len
    nums = struct.unpack_from(f"<{n_gaps}I{n_escaped}q{n}I", raw, pos)
    pos += 4 * n_gaps + 8 * n_escaped + 4 * n
    gaps = nums[:n_gaps]
    if n_escaped:
        escaped = iter(nums[n_gaps:n_gaps + n_escaped])
        gaps = [next(escaped) if d == _ESC else d for d in gaps]
    gap = iter(gaps)
    deltas = [next(gap) if mask >> i & 1 else 0 for i in range(k)]
    times = list(accumulate(deltas, initial=t0)) if n else []
    hashes = list(nums[n_gaps + n_escaped:])
    rec_items = list(map(at, raw[pos:pos + n_recs]))
    pos += n_recs
    rec_scores = struct.unpack_from(f"<{n_recs}I", raw, pos)
    pos += 4 * n_recs
    ids, sessions, vflags = (raw[pos + i * n_visits:pos + (i + 1) * n_visits] for i in range(3))
    pos += 3 * n_visits
    vnum = struct.unpack_from(f"<{n_visits}q{n_visits}d", raw, pos)
    visits = [Visit(strings[ids[i]], vnum[i], strings[sessions[i]] if vflags[i] & 1 else None,
                    vnum[n_visits + i], bool(vflags[i] & 2)) for i in range(n_visits)]
    return MemberState(
        member_id=strings[0], partition=partition, items=items, types=types, times=times,
        hashes=hashes, last_event_id=strings[1], last_offset=last_offset, first_ts=first_ts, n_events=n_events,
        purchase_visits=pv, monetary=monetary, cart_open=cart, dropped_ts=dropped, visits=visits,
        check_index=ci, episode=strings[2] if has_episode else None, churned=bool(flags & 1),
        reactivated=bool(flags & 2), stage=_STAGES[flags >> 4], tier=_TIERS[tier],
        churn_probability=None if pc == _NONE16 else pc / 10000,
        recommendations=[(i, x / 1e6) for i, x in zip(rec_items, rec_scores)],
        recommendations_fallback=bool(flags & 4), pending_score=bool(flags & 8))


def apply_event(state: MemberState, event: Event | ShopEvent, max_len: int,
                digest: Optional[int] = None) -> Optional[Visit]:
    """Add one event; returns the purchase visit it belongs to, if it is a purchase.

    The sequence is kept in event order: an event older than the member's newest
    (late, or out of order) goes in at its place in time, after events of the
    same time. It is not the newest, so `last_event_id` stays; it counts in the
    totals, and opens the cart only if no purchase came after it.
    """
    ts = event.ts
    times = state.times
    if not times:
        state.first_ts = ts
    at = len(times) if not times or ts >= times[-1] else bisect.bisect_right(times, ts)
    newest = at == len(times)
    code = TYPE_CODE[event.type]
    digest = event_hash(event.event_id) if digest is None else digest
    if newest:
        state.items.append(event.item_id)
        state.types.append(code)
        times.append(ts)
        state.hashes.append(digest)
        state.last_event_id = event.event_id
    else:
        state.first_ts = min(state.first_ts, ts)
        state.items.insert(at, event.item_id)
        state.types.insert(at, code)
        times.insert(at, ts)
        state.hashes.insert(at, digest)
    if len(state.items) > max_len:
        state.dropped_ts = max(state.dropped_ts, times[0])
        del state.items[0], state.types[0], times[0], state.hashes[0]
    state.n_events += 1
    visit = None
    if event.type in ("add_to_cart", "remove_from_cart") and not newest and _bought_after(state, ts):
        pass  # the cart it changed was closed by a later purchase
    elif event.type == "add_to_cart":
        state.cart_open += event.quantity
    elif event.type == "remove_from_cart":
        state.cart_open = max(0, state.cart_open - event.quantity)
    elif event.type == "purchase":
        amount = (event.price or 0.0) * event.quantity
        state.monetary += amount
        visit = _purchase_visit(state, event, ts, amount) if newest else _earlier_visit(state, event, ts, amount)
    return visit


def _bought_after(state: MemberState, ts: int) -> bool:
    """A purchase later than `ts` in the member's sequence."""
    at = bisect.bisect_right(state.times, ts)
    return PURCHASE in state.types[at:]


def _purchase_visit(state: MemberState, event, ts: int, amount: float) -> Visit:
    """The newest purchase: the newest visit's (same session, or within VISIT_GAP_MS
    without one) or a new visit."""
    state.cart_open = 0
    visit = state.visits[-1] if state.visits else None
    same = visit is not None and (
        (event.session_id is not None and event.session_id == visit.session)
        or (event.session_id is None and visit.session is None and ts - visit.ts < VISIT_GAP_MS))
    if same:
        visit.spend += amount
        return visit
    visit = Visit(event.event_id, ts, event.session_id, amount)
    if state.visits:
        state.visits[-1].session = None  # only the newest visit's session is ever compared
    state.visits.append(visit)
    del state.visits[:-RECENT_VISITS]
    state.purchase_visits += 1
    return visit


def _earlier_visit(state: MemberState, event, ts: int, amount: float) -> Visit:
    """A purchase older than the member's newest event: the kept visit within
    VISIT_GAP_MS of it, or a visit of its own in its place in time (counted, and kept
    if it is among the RECENT_VISITS newest)."""
    for visit in state.visits:
        if (event.session_id is not None and event.session_id == visit.session) or abs(ts - visit.ts) < VISIT_GAP_MS:
            visit.spend += amount
            return visit
    visit = Visit(event.event_id, ts, None, amount)
    state.purchase_visits += 1
    at = sum(v.ts <= ts for v in state.visits)
    state.visits.insert(at, visit)
    del state.visits[:-RECENT_VISITS]
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
        gaps += map(truediv, map(sub, times[1:], times[:-1]), repeat(1000.0, n - 1))
    items = [b""] * pad + list(map(str.encode, state.items))
    types = [0] * pad + state.types
    return items, types, gaps
