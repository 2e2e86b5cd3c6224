"""Bytes from `shop.events` -> a validated event, or the reason it is not one.

`schemas.ShopEvent` (pydantic) is the contract; it decides every event.
Most events take a fast path first, plain checks in Python that accept only
what ShopEvent accepts, with the same values (tests/unit/domain/test_parsing.py
holds the two to each other over some hundreds of altered events);
whatever the fast path does not accept, ShopEvent validates and, if it
refuses, explains. Parsing was an eighth of the worker's time with
ShopEvent alone (bench/PROFILE.md); the fast path took parse_event over
the bench log from 9.1 to 6.5 µs per event.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import orjson
from pydantic import ValidationError

from stream.contract.schemas import EVENT_TIMES, EVENT_TYPES, MAX_EVENT_MS, MIN_EVENT_MS, SCHEMA_VERSION, ShopEvent

_TYPES = frozenset(EVENT_TYPES)
_ID_MAX = 128
_STRING_FIELDS = ("event_id", "member_id", "item_id", "session_id", "category")


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a message cannot be an event; `code` is stable, `detail` readable."""
    code: str
    detail: str


class Event:
    """A valid `shop.events` event, `ts` in epoch milliseconds: the fields of
    ShopEvent without its machinery (the agent makes one per event)."""
    __slots__ = ("event_id", "member_id", "type", "item_id", "ts", "session_id", "price", "quantity",
                 "category", "schema_version")

    def __init__(self, event_id: str, member_id: str, type: str, item_id: str, ts: int,
                 session_id: Optional[str] = None, price: Union[int, float, None] = None,
                 quantity: int = 1, category: Optional[str] = None, schema_version: int = SCHEMA_VERSION):
        self.event_id, self.member_id, self.type, self.item_id = event_id, member_id, type, item_id
        self.ts, self.session_id, self.price, self.quantity = ts, session_id, price, quantity
        self.category, self.schema_version = category, schema_version

    @classmethod
    def of(cls, model: ShopEvent) -> "Event":
        return cls(model.event_id, model.member_id, model.type, model.item_id, model.ts, model.session_id,
                   model.price, model.quantity, model.category, model.schema_version)

    def __repr__(self) -> str:
        return "Event(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"

    def __eq__(self, other) -> bool:
        return isinstance(other, Event) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)


def _id(v) -> bool:
    return type(v) is str and 0 < len(v) <= _ID_MAX


def _member(v) -> bool:
    """A member id the fast path takes: printable (so no control character; ShopEvent
    decides the rest)."""
    return _id(v) and v.isprintable()


def _text(v) -> bool:
    return v is None or (type(v) is str and len(v) <= _ID_MAX)


def fast_event(data: dict) -> Optional[Event]:
    """The event, if plain checks show ShopEvent would accept `data` as it is; None: ask
    ShopEvent. Exact types only (ShopEvent's fields are strict: no bool for an int)."""
    get = data.get
    event_id, member_id, kind, item_id, ts = (get("event_id"), get("member_id"), get("type"),
                                              get("item_id"), get("ts"))
    if not (_id(event_id) and _member(member_id) and _id(item_id) and type(kind) is str and kind in _TYPES):
        return None
    if type(ts) is str:
        try:
            ts = EVENT_TIMES[ts]
        except ValueError:
            return None
    elif type(ts) is not int:
        return None
    if not MIN_EVENT_MS <= ts < MAX_EVENT_MS:
        return None
    session, price, quantity, category = get("session_id"), get("price"), get("quantity", 1), get("category")
    version = get("schema_version", SCHEMA_VERSION)
    if not (_text(session) and _text(category) and type(quantity) is int and quantity >= 1
            and type(version) is int and version == SCHEMA_VERSION):
        return None
    if price is not None and not ((type(price) is int or type(price) is float) and price >= 0
                                  and math.isfinite(price)):
        return None
    return Event(event_id, member_id, kind, item_id, ts, session, price, quantity, category, version)


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_record(raw: bytes | None, key: bytes | None, max_bytes: int, max_chars: int = _ID_MAX) -> Event | Rejected:
    """A `shop.events` record: its value an event, keyed by its member_id (the contract).

    An unkeyed event is dead-lettered like a mis-keyed one: the producer's
    partitioner put it where its key (none) sent it, not where the member's
    other events are, so it would be applied beside another copy of the
    member's state, out of its order and its duplicate check."""
    event = parse_event(raw, key, max_bytes, max_chars)
    if key is None and isinstance(event, Event):
        return Rejected("NO_KEY", "Kafka key missing; events are keyed by member_id")
    return event


def parse_event(raw: bytes | None, key: bytes | None, max_bytes: int, max_chars: int = _ID_MAX) -> Event | Rejected:
    """A message value as an event; a `key` given must be its member_id (None: not
    checked, for logs read offline; the worker uses `parse_record`). `max_chars`: a
    shop's own cap on the string fields, below the contract's 128."""
    if raw is None:
        return Rejected("EMPTY", "message has no value")
    if len(raw) > max_bytes:
        return Rejected("OVERSIZE", f"{len(raw)} bytes, limit {max_bytes}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejected("NOT_JSON", f"not UTF-8 JSON: {exc}")
    if not isinstance(data, dict):
        return Rejected("NOT_OBJECT", f"JSON {type(data).__name__}, expected an object")
    event = fast_event(data)
    if event is None:
        try:
            event = Event.of(ShopEvent.model_validate(data))
        except ValidationError as exc:
            too_long = any(e["type"] == "string_too_long" for e in exc.errors(include_url=False))
            return Rejected("FIELD_TOO_LONG" if too_long else "INVALID", _summarise(exc))
    if max_chars < _ID_MAX:
        for name in _STRING_FIELDS:
            value = getattr(event, name)
            if value is not None and len(value) > max_chars:
                return Rejected("FIELD_TOO_LONG", f"{name}: {len(value)} characters, limit {max_chars}")
    if key is not None and key != event.member_id.encode():
        # Another key would put this member's events on another partition.
        return Rejected("KEY_MISMATCH", "Kafka key differs from member_id")
    return event
