"""Hyperparameters of the member transformer, in one place.

Every number that shapes the network or its training lives here, documented,
so that a run is described by this object alone (it is saved with the export).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ModelConfig:
    # Sequence: the member's last `max_len` events, newest last (left padding).
    max_len: int = 50
    # Width of every embedding and of the GPT-2 blocks.
    d_model: int = 64
    # GPT-2 blocks (causal self-attention + MLP) stacked over the sequence.
    n_layers: int = 2
    n_heads: int = 2
    dropout: float = 0.1
    # How many next-item candidates the served model returns per member.
    top_k: int = 20
    # Churn = no event at all within this many days after the scoring time
    # (the window at which the survival churn head is read out when serving).
    churn_horizon_days: float = 90.0
    # Items seen fewer times than this in training map to the unknown id.
    min_item_count: int = 2


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 7
    epochs: int = 8
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.01
    # Loss = next-item cross-entropy + churn_weight * churn survival NLL.
    churn_weight: float = 2.0
    # Next-item loss is taken on this many newest positions of each sample.
    item_loss_positions: int = 16
    # Calendar cutoffs at which churn samples are cut, every `cutoff_step_days`.
    cutoff_step_days: int = 14
    # Shortest observation window (days) that labels a churn training sample.
    min_window_days: float = 7.0
    # Extra churn samples cut at randomly chosen events of each member.
    event_cuts_per_member: int = 5
    # CPU threads for training (the CI machine has 2 cores).
    threads: int = 2
    # "auto": the first CUDA GPU when there is one, else the CPU.
    device: str = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)

    def to_dict(self) -> dict:
        return asdict(self)
