"""Pseudonymous member ids: `member_id` -> `<key id>.<HMAC-SHA256 of it, 128 bits in hex>`.

With a key configured (MEMBERSTREAM_PSEUDONYMIZATION_KEY), the worker replaces
every event's member id by its pseudonym before anything is stored or
emitted (SECURITY.md). The same key and id give the same pseudonym on every
worker and after every restart, so a member's state, outputs and changelog
records all carry it; without the key it cannot be reversed or recomputed.
The key id in front names the key that made it, so that a CRM holding
several keys (after a rotation) knows which to use (`reidentify`).
"""
from __future__ import annotations

import hashlib
import hmac
import re
from typing import Iterable, Mapping

from stream.memo import Memo

KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
MIN_KEY_CHARS = 32
DIGEST_HEX = 32  # 128 bits: no collision among 10^12 members but once in ~10^15 shops


class Pseudonymizer:
    """Callable: raw member id (str or the Kafka key's bytes) -> pseudonym."""

    def __init__(self, key: str, key_id: str, memo_entries: int = 1 << 17):
        if not KEY_ID.fullmatch(key_id):
            raise ValueError("pseudonymization key id: 1 to 32 of A-Z a-z 0-9 _ -")
        if len(key) < MIN_KEY_CHARS:
            raise ValueError(f"pseudonymization key: at least {MIN_KEY_CHARS} characters "
                             "(e.g. `openssl rand -hex 32`)")
        self._key, self.key_id = key.encode(), key_id
        self._memo: Memo[bytes, str] = Memo(self._compute, memo_entries)

    def _compute(self, raw: bytes) -> str:
        return f"{self.key_id}.{hmac.new(self._key, raw, hashlib.sha256).hexdigest()[:DIGEST_HEX]}"

    def __call__(self, member_id: str | bytes) -> str:
        return self._memo[member_id.encode() if isinstance(member_id, str) else member_id]

    def digest(self, data: bytes) -> str:
        """A keyed digest of any bytes (a dead letter's id: a plain hash of a small
        record could be searched for the member id in it)."""
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"Pseudonymizer(key_id={self.key_id!r}, key=<hidden>)"


def reidentify(pseudonyms: Iterable[str], member_ids: Iterable[str], keys: Mapping[str, str]) -> dict[str, str]:
    """The CRM side: pseudonym -> member id, for the pseudonyms found among the
    shop's `member_ids` under any of `keys` (key id -> key). A pseudonym not
    found is left out (not a member of the list, or made with another key)."""
    wanted = set(pseudonyms)
    by_key: dict[str, set[str]] = {}
    for p in wanted:
        by_key.setdefault(p.split(".", 1)[0], set()).add(p)
    found: dict[str, str] = {}
    makers = [Pseudonymizer(keys[key_id], key_id, memo_entries=1) for key_id in by_key if key_id in keys]
    for member in member_ids:
        for make in makers:
            p = make._compute(member.encode())
            if p in wanted:
                found[p] = member
        if len(found) == len(wanted):
            break
    return found
