"""What a scorer takes and gives: one row per member in, scores out, or
ScoringUnavailable. The processing core depends on these alone, not on the
Triton client (stream/scoring/triton.py) that implements them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


class ScoringUnavailable(Exception):
    """Triton could not score this batch (down, timed out, or refused)."""


@dataclass
class Row:
    items: list[bytes]
    types: list[int]
    gaps: list[float]
    silence_s: float


@dataclass
class Scores:
    churn: np.ndarray        # [N] float32
    items: list[list[str]]   # [N][K]
    scores: np.ndarray       # [N, K] float32
    # [N, C] float32: churn at the C checkpoint silences (None: not served or not asked).
    churn_at: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.churn)


def check_answer(scores: Scores, n: int) -> None:
    """An answer with a row per row asked, or ValueError (a server that answers in
    another shape must not be read as scores for other members)."""
    shapes = (len(scores.churn), len(scores.items), len(scores.scores))
    if shapes != (n, n, n) or (scores.churn_at is not None and len(scores.churn_at) != n):
        raise ValueError(f"answer of {shapes} rows for {n} asked")
