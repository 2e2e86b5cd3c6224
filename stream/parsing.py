"""Bytes from `shop.events` -> a validated ShopEvent, or the reason it is not one."""
from __future__ import annotations

from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from .schemas import ShopEvent


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a message cannot be an event; `code` is stable, `detail` readable."""
    code: str
    detail: str


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_event(raw: bytes | None, key: bytes | None, max_bytes: int) -> ShopEvent | Rejected:
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
    try:
        event = ShopEvent.model_validate(data)
    except ValidationError as exc:
        return Rejected("INVALID", _summarise(exc))
    if key is not None and key != event.member_id.encode():
        # Another key would put this member's events on another partition.
        return Rejected("KEY_MISMATCH", "Kafka key differs from member_id")
    return event
