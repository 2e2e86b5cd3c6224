"""Quality metrics, pure functions over numpy arrays (hand-checked in tests).

Next item: one target per prediction point, a ranked list per point.
Churn: binary labels (1 = churned) against probabilities or scores.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np


def rank_of(target, ranked: Sequence) -> int:
    """1-based rank of `target` in `ranked`, 0 when absent."""
    for i, item in enumerate(ranked):
        if item == target:
            return i + 1
    return 0


def next_item_metrics(ranks: Iterable[int], k: int = 20) -> dict:
    """HR@k, MRR@k, NDCG@k from 1-based ranks (0 = not recommended).

    With one relevant item per point, NDCG@k = 1 / log2(rank + 1) for a hit.
    """
    r = np.asarray(list(ranks), dtype=np.int64)
    hit = (r > 0) & (r <= k)
    n = max(1, len(r))
    return {"points": int(len(r)),
            f"hr@{k}": float(hit.sum() / n),
            f"mrr@{k}": float((1.0 / np.where(hit, r, 1)).dot(hit) / n),
            f"ndcg@{k}": float((1.0 / np.log2(np.where(hit, r, 1) + 1.0)).dot(hit) / n)}


def set_metrics(ranked: Sequence, relevant: set, k: int = 20) -> tuple[float, float]:
    """(hit, NDCG@k) of one ranked list against a set of relevant items.

    hit is 1 when any relevant item is in the top k; NDCG uses binary gains
    and the ideal ordering of min(k, |relevant|) relevant items first.
    """
    gains = [1.0 / math.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in relevant]
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return float(bool(gains)), (sum(gains) / ideal if ideal else 0.0)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney), tied scores given half credit; NaN if one class."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    # Average 1-based rank of each run of equal scores.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e - 1) / 2 + 1
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pr_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of ranking positives first; tied scores enter together."""
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = labels.sum()
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    # Precision/recall only at the end of each run of tied scores.
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[last]
    seen = last + 1
    recall_gain = np.diff(np.r_[0.0, tp]) / n_pos
    return float((recall_gain * tp / seen).sum())


def brier(labels: np.ndarray, probs: np.ndarray) -> float:
    return float(np.mean((np.asarray(probs, dtype=np.float64) - np.asarray(labels)) ** 2))


def f1_at(labels: np.ndarray, probs: np.ndarray, threshold: float) -> float:
    """F1 of predicting churn when probability >= threshold."""
    labels = np.asarray(labels) == 1
    pred = np.asarray(probs) >= threshold
    tp = float((pred & labels).sum())
    denom = float(pred.sum() + labels.sum())
    return 2 * tp / denom if denom else 0.0


def ece(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the mean |observed rate - mean probability| over
    equal-width probability bins, weighted by the bins' shares."""
    labels, probs = np.asarray(labels, float), np.asarray(probs, float)
    which = np.minimum((probs * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(labels[inside].mean() - probs[inside].mean())
    return float(total)


def reliability(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> list[dict]:
    """The reliability diagram's points: per bin, members, mean probability, observed rate."""
    labels, probs = np.asarray(labels, float), np.asarray(probs, float)
    which = np.minimum((probs * bins).astype(int), bins - 1)
    return [{"bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}", "members": int((which == b).sum()),
             "mean probability": float(probs[which == b].mean()), "observed": float(labels[which == b].mean())}
            for b in range(bins) if (which == b).any()]


def churn_metrics(labels: np.ndarray, scores: np.ndarray, probabilities: bool,
                  threshold: float) -> dict:
    """AUC and PR-AUC for any score; Brier, ECE and F1 only for probabilities."""
    out = {"auc": auc(labels, scores), "pr_auc": pr_auc(labels, scores)}
    out["brier"] = brier(labels, scores) if probabilities else float("nan")
    out["ece"] = ece(labels, scores) if probabilities else float("nan")
    out["f1"] = f1_at(labels, scores, threshold) if probabilities else float("nan")
    return out
