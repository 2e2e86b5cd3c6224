"""Deterministic ids of output messages, so that a consumer can drop repeats.

Delivery is at-least-once: after a crash the worker re-applies its input from
the stored cursor and sends the same outputs again. Each id is a digest of
what decided its message (the member and the input that caused it), never of
the wall clock, so a message sent again carries the id it had the first time.
"""
from __future__ import annotations

import hashlib

import orjson


def message_id(tag: str, *parts: str | int | bool | None) -> str:
    """sha256 of the tag and the parts, the first 32 hex digits (128 bits), as
    churn_policy.alert_id. The parts are JSON-encoded as a list: ids may hold any
    character, so no two lists of parts give the same text."""
    return hashlib.sha256(orjson.dumps([tag, *parts])).hexdigest()[:32]
