"""Every internal key of the members table, in one place.

The table maps member id -> MemberState bytes. Beside the members it holds
bookkeeping records, one of each kind per input partition. Their keys start
with a NUL byte (`BOOKKEEPING`), and nothing else reads or writes that
format:

* `input_key(p)`: the next input offset of partition p that the states in
  the table reach (the agent's input cursor, stream/processing/input_cursor.py),
  and the partition's event-time watermark at that offset (`input_value`);
* `end_marker_key(p)`: the lone record that closes each commit's changelog
  writes of partition p where the broker needs it (docs/broker.md, quirk 2).
"""
from __future__ import annotations

from typing import Mapping, Optional

BOOKKEEPING = b"\x00"
INPUT_PREFIX = BOOKKEEPING + b"input:"
END_MARKER_PREFIX = BOOKKEEPING + b"end-of-batch:"


def is_bookkeeping(key: bytes) -> bool:
    """A table key that is not a member."""
    return key.startswith(BOOKKEEPING)


def input_key(partition: int) -> bytes:
    return INPUT_PREFIX + str(partition).encode()


def end_marker_key(partition: int) -> bytes:
    return END_MARKER_PREFIX + str(partition).encode()


def bookkeeping_keys(partitions: int) -> list[bytes]:
    """Every bookkeeping key the table can hold for `partitions` input partitions."""
    return [key for p in range(partitions) for key in (input_key(p), end_marker_key(p))]


def input_value(offset: int, watermark: Optional[int]) -> bytes:
    """`<offset> <watermark>`: the watermark as it stood once the records before `offset`
    were applied, so that a restart re-applies them under the watermarks they had (states
    may be ahead of the offset after a crash, and their newest events with them)."""
    return str(offset).encode() if watermark is None else f"{offset} {watermark}".encode()


def read_input_value(raw: bytes) -> tuple[int, Optional[int]]:
    """(offset, watermark) of an `input_value`; a bare offset (written before the watermark
    was stored with it) has none."""
    offset, _, watermark = raw.partition(b" ")
    return int(offset), int(watermark) if watermark else None


def _stored_input(store: Mapping[bytes, bytes], partition: int) -> tuple[Optional[int], Optional[int]]:
    raw = store.get(input_key(partition))
    return (None, None) if raw is None else read_input_value(raw)


def stored_offset(store: Mapping[bytes, bytes], partition: int) -> Optional[int]:
    """The next input offset of `partition` that the stored states reach (None: none stored)."""
    return _stored_input(store, partition)[0]


def stored_watermark(store: Mapping[bytes, bytes], partition: int) -> Optional[int]:
    """The watermark of `partition` at its stored input offset (None: none stored)."""
    return _stored_input(store, partition)[1]
