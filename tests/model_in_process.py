"""The shipped model (triton_repo/memberstream/1) computed in-process with
models.serving.predict: what the Triton backend serves, without the server.

Shared by the unit tests (tests/unit/test_serving.py, test_processor.py) and
the derived expectations (tests/expected.py).
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import torch

from models.encoding import ItemVocabulary
from models.network import MemberTransformer
from models.serving import predict, prepare
from stream.scorer import Scores

EXPORT = Path(__file__).parents[1] / "triton_repo" / "memberstream" / "1"
EXCERPT = Path(__file__).parent / "data" / "online-retail-excerpt.jsonl"


def shipped(precision="fp32"):
    hp = json.loads((EXPORT / "hparams.json").read_text())
    vocab = ItemVocabulary.load(EXPORT / "vocab.json")
    state = torch.load(EXPORT / "weights.pt", weights_only=True)
    state.pop("_vocab_sha256")
    model = MemberTransformer(len(vocab), hp["max_len"], hp["d_model"], hp["n_layers"], hp["n_heads"], 0.0,
                              hp["churn_horizon_days"])
    model.load_state_dict(state)
    return prepare(model, "cpu", precision), vocab, hp["top_k"]


class InProcessScorer:
    """The served computation without the server; `gate` holds requests back."""
    model_version = "memberstream@test"

    def __init__(self, checkpoints_days=()):
        self.model, self.vocab, self.k = shipped()
        self.requests: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        # As TritonScorer against a model serving CHECKPOINT_SILENCE (empty: one that does not).
        self.at = np.array([d * 86400.0 for d in checkpoints_days], np.float32)

    async def score(self, rows):
        self.requests.append(len(rows))
        await self.gate.wait()
        at = np.tile(self.at, (len(rows), 1)) if len(self.at) else None
        out = predict(
            self.model, self.vocab, np.array([r.items for r in rows], dtype=object),
            np.array([r.types for r in rows], dtype=np.int8), np.array([r.gaps for r in rows], dtype=np.float32),
            np.array([[r.silence_s] for r in rows], dtype=np.float32), k=self.k, at_silences=at)
        return Scores(out[0], [[i.decode() for i in row] for row in out[1]], out[2], *out[3:])
