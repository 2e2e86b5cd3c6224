"""The exported model loaded in this process, for the measures that run it beside
Triton: the Triton table, the state size, bench/gpu.py."""
from __future__ import annotations

import json

from stream.settings import Settings


def load_model(settings: Settings):
    """The exported model in-process, as the backend builds it: (model, vocab, hparams)."""
    import torch

    from models.encoding import ItemVocabulary
    from models.network import MemberTransformer

    export = settings.triton_repo / settings.triton_model / "1"
    hp = json.loads((export / "hparams.json").read_text())
    vocab = ItemVocabulary.load(export / "vocab.json")
    state = torch.load(export / "weights.pt", weights_only=True)
    state.pop("_vocab_sha256")
    model = MemberTransformer(len(vocab), hp["max_len"], hp["d_model"], hp["n_layers"],
                              hp["n_heads"], 0.0, hp["churn_horizon_days"])
    model.load_state_dict(state)
    model.eval()
    return model, vocab, hp
