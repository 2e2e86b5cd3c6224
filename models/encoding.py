"""Turn raw member sequences into model tensors.

This one module is used by training and, copied verbatim into every export,
by the served model, so training and serving cannot drift apart. It depends on
numpy and torch only.

Raw inputs (the Triton signature, see DESIGN.md section 5):
  item_ids   [B, L] bytes   raw item ids, newest last, b"" for padding
  types      [B, L] int8    event type codes (EVENT_TYPES index + 1), 0 = pad
  gaps       [B, L] float32 seconds since the member's previous event (0 first)
  silence    [B, 1] float32 seconds from the newest event to the scoring time
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# The contract's event types, in the contract's order; code = index + 1.
EVENT_TYPES = ("view", "click", "add_to_cart", "remove_from_cart", "purchase")
PURCHASE_CODE = EVENT_TYPES.index("purchase") + 1

PAD_ID = 0
UNKNOWN_ID = 1

# Bucket edges (seconds) for gaps between events and for silence.
DAY = 86400.0
GAP_EDGES = np.array(
    [1, 60, 300, 1800, 3600, 3 * 3600, 12 * 3600, DAY, 3 * DAY, 7 * DAY, 14 * DAY,
     30 * DAY, 60 * DAY, 120 * DAY], dtype=np.float64)
N_GAP_BUCKETS = len(GAP_EDGES) + 2  # +1 for the top bucket, +1 for padding (0)
SILENCE_EDGES = np.array([3600, DAY, 3 * DAY, 7 * DAY, 14 * DAY, 21 * DAY, 30 * DAY,
                          45 * DAY, 60 * DAY, 90 * DAY, 120 * DAY, 180 * DAY], dtype=np.float64)
N_SILENCE_BUCKETS = len(SILENCE_EDGES) + 1
# A new visit starts after this much quiet; counts "orders/visits", not lines.
VISIT_GAP_S = 1800.0
N_FEATURES = 6


class ItemVocabulary:
    """Raw item id <-> dense index, with a content hash that versions it."""

    def __init__(self, items: list[str], counts: list[int] | None = None):
        self.items = list(items)
        self.counts = list(counts) if counts is not None else [0] * len(self.items)
        self.index = {item.encode(): i + 2 for i, item in enumerate(self.items)}
        self.sha256 = hashlib.sha256("\n".join(self.items).encode()).hexdigest()

    def __len__(self) -> int:
        return len(self.items) + 2

    def item_at(self, index: int) -> str:
        return self.items[index - 2]

    def encode(self, raw: np.ndarray) -> np.ndarray:
        """[B, L] of bytes -> [B, L] int64 indices; b"" is padding."""
        get = self.index.get
        flat = [PAD_ID if not r else get(r, UNKNOWN_ID) for r in raw.reshape(-1)]
        return np.asarray(flat, dtype=np.int64).reshape(raw.shape)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"sha256": self.sha256, "items": self.items,
                                    "counts": self.counts}))

    @classmethod
    def load(cls, path: Path) -> "ItemVocabulary":
        data = json.loads(path.read_text())
        vocab = cls(data["items"], data.get("counts"))
        if vocab.sha256 != data["sha256"]:
            raise ValueError(f"vocabulary {path} does not match its recorded sha256")
        return vocab


def bucketize(seconds: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.searchsorted(edges, seconds, side="right").astype(np.int64)


def sequence_counts(types: np.ndarray, gaps: np.ndarray) -> tuple[np.ndarray, ...]:
    """What the features take from the sequence: (events, purchases, span in days,
    purchase visits, visits), each [B]."""
    mask = types > 0
    purchases = types == PURCHASE_CODE
    new_visit = mask & ((gaps >= VISIT_GAP_S) | (np.cumsum(mask, axis=1) == 1))
    return (mask.sum(axis=1), purchases.sum(axis=1), (gaps * mask).sum(axis=1) / DAY,
            (new_visit & purchases).sum(axis=1), new_visit.sum(axis=1))


def features_at(counts: tuple[np.ndarray, ...], silence: np.ndarray) -> np.ndarray:
    """The features of sequences (their `sequence_counts`) at a silence in seconds each."""
    n_events, purchases, span_days, purchase_visits, visits = counts
    silence_days = silence.reshape(-1) / DAY
    rate = visits / (span_days + silence_days + 1.0)
    feats = np.stack([
        np.log1p(silence_days), np.log1p(n_events), np.log1p(purchases),
        np.log1p(span_days), np.log1p(purchase_visits), np.log1p(rate * 30.0),
    ], axis=1)
    return feats.astype(np.float32)


def member_features(types: np.ndarray, gaps: np.ndarray, silence: np.ndarray) -> np.ndarray:
    """Recency / frequency features computed from the raw sequence alone."""
    return features_at(sequence_counts(types, gaps), silence)


@dataclass
class EncodedBatch:
    items: torch.Tensor      # [B, L] int64
    types: torch.Tensor      # [B, L] int64
    gap_buckets: torch.Tensor  # [B, L] int64, 0 = pad
    silence_buckets: torch.Tensor  # [B] int64
    features: torch.Tensor   # [B, N_FEATURES] float32

    def to(self, device) -> "EncodedBatch":
        return EncodedBatch(*(t.to(device) for t in (
            self.items, self.types, self.gap_buckets, self.silence_buckets, self.features)))


def encode(vocab: ItemVocabulary, item_ids: np.ndarray, types: np.ndarray,
           gaps: np.ndarray, silence: np.ndarray) -> EncodedBatch:
    types = types.astype(np.int64)
    gaps = gaps.astype(np.float64)
    silence = silence.astype(np.float64).reshape(-1)
    mask = types > 0
    gap_b = np.where(mask, bucketize(gaps, GAP_EDGES) + 1, 0)
    return EncodedBatch(
        items=torch.from_numpy(vocab.encode(item_ids)),
        types=torch.from_numpy(types),
        gap_buckets=torch.from_numpy(gap_b),
        silence_buckets=torch.from_numpy(bucketize(silence, SILENCE_EDGES)),
        features=torch.from_numpy(member_features(types, gaps, silence)),
    )
