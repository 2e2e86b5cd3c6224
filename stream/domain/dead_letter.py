"""Dead letters: the original bytes, untouched, with headers naming the error.

The value stays the original record, so the id is a header: `dead_letter_id`
names the source record (topic, partition, offset and its bytes), and a record
dead-lettered again after a restart has the id it had. The bytes count too: a
topic recreated with the same name starts its offsets again.

With pseudonymisation on (SECURITY.md), the value is minimised instead
(`minimised`): a JSON object keeps only the contract's fields, its member id
replaced by the pseudonym, a field too long or not a plain value replaced by
a note; anything else is dropped (an empty value). The headers still point at
the source record, which authorised operators can read on shop.events, and
the id's digest is keyed, so that it cannot be searched for a member id.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Optional

import orjson

from stream.domain.event_time import now_rfc3339
from stream.domain.message_id import message_id
from stream.domain.parsing import Rejected


CONTRACT_FIELDS = ("event_id", "member_id", "type", "item_id", "ts", "session_id", "price", "quantity",
                   "category", "schema_version")  # ShopEvent's: the allow-list (SECURITY.md)
_PLAIN_MAX = 128


def dead_letter_id(topic: str, partition: int, offset: int, value: Optional[bytes],
                   digest: Callable[[bytes], str] = lambda b: hashlib.sha256(b).hexdigest()) -> str:
    return message_id("dead-letter", topic, partition, offset, None if value is None else digest(value))


def minimised(value: Optional[bytes], pseudonym: Callable[[str], str], code: str = "") -> bytes:
    """A rejected record's value as a pseudonymising worker forwards it (`code`: why it
    was rejected; one too large or not JSON is not parsed again)."""
    if code in ("OVERSIZE", "NOT_JSON", "EMPTY"):
        return b""
    try:
        data = orjson.loads(value) if value else None
    except orjson.JSONDecodeError:
        return b""
    if not isinstance(data, dict):
        return b""
    kept: dict = {}
    for name in CONTRACT_FIELDS:
        if name not in data:
            continue
        v = data[name]
        if name == "member_id":
            kept[name] = pseudonym(v) if isinstance(v, str) else f"<{type(v).__name__}, removed>"
        elif v is None or isinstance(v, (bool, int, float)) or (isinstance(v, str) and len(v) <= _PLAIN_MAX):
            kept[name] = v
        else:
            kept[name] = f"<{type(v).__name__} of {len(v) if isinstance(v, (str, list, dict)) else '?'}, removed>"
    return orjson.dumps(kept)


def dead_letter_headers(rejected: Rejected, topic: str, partition: int, offset: int,
                        value: Optional[bytes], digest: Optional[Callable[[bytes], str]] = None
                        ) -> list[tuple[str, bytes]]:
    """`digest`: the keyed digest of a pseudonymising worker (None: SHA-256)."""
    return [
        ("dead_letter_id", (dead_letter_id(topic, partition, offset, value) if digest is None
                            else dead_letter_id(topic, partition, offset, value, digest)).encode()),
        ("error", rejected.code.encode()),
        ("error_detail", rejected.detail.encode()[:1024]),
        ("source_topic", topic.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(offset).encode()),
        ("rejected_at", now_rfc3339().encode()),
    ]
