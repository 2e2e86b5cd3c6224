"""The served computation: raw member sequences in, churn and top-K out.

Copied verbatim into every export; the Triton backend and the eager
reference used by tests and evaluation both call `predict`.
"""
from __future__ import annotations

import numpy as np
import torch

try:
    from .encoding import ItemVocabulary, encode
    from .network import MemberTransformer
except ImportError:  # pragma: no cover - inside an export
    from encoding import ItemVocabulary, encode
    from network import MemberTransformer


def predict(model: MemberTransformer, vocab: ItemVocabulary, item_ids: np.ndarray,
            types: np.ndarray, gaps: np.ndarray, silence: np.ndarray, k: int):
    """(churn [B] float32, top item ids [B, k] bytes, top scores [B, k] float32).

    Scores are next-item probabilities (softmax over the vocabulary).
    """
    batch = encode(vocab, item_ids, types, gaps, silence)
    with torch.inference_mode():
        logits, churn = model(batch)
        probs = torch.softmax(logits, dim=1)
        scores, idx = probs.topk(k, dim=1)
    lookup = np.array([b"", b""] + [i.encode() for i in vocab.items], dtype=object)
    return (churn.numpy().astype(np.float32), lookup[idx.numpy()],
            scores.numpy().astype(np.float32))
