"""A bounded memo for the hot path: values that come in runs (the timestamp of an
order's lines, the ids of a shop's items) are computed once per distinct key."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Memo(dict, Generic[K, V]):
    """key -> compute(key), computed on the first lookup; emptied once it holds
    `max_entries` (recent keys are the ones that repeat). A `compute` that raises
    stores nothing."""

    def __init__(self, compute: Callable[[K], V], max_entries: int):
        super().__init__()
        self.compute, self.max_entries = compute, max_entries

    def __missing__(self, key: K) -> V:
        value = self.compute(key)
        if len(self) >= self.max_entries:
            self.clear()
        self[key] = value
        return value
