"""Every internal key of the members table, in one place.

The table maps member id -> MemberState bytes. Beside the members it holds
bookkeeping records, one of each kind per input partition. Their keys start
with a NUL byte (`BOOKKEEPING`), and nothing else reads or writes that
format:

* `input_key(p)`: the next input offset of partition p that the states in
  the table reach (the agent's input cursor, stream/processing/input_cursor.py);
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


def stored_offset(store: Mapping[bytes, bytes], partition: int) -> Optional[int]:
    """The next input offset of `partition` that the stored states reach (None: none stored)."""
    raw = store.get(input_key(partition))
    return None if raw is None else int(raw)
