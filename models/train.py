"""Seeded training of the member transformer on recorded member histories."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from .config import TrainConfig
from .datasets import MemberEvent
from .encoding import PAD_ID, UNKNOWN_ID, EncodedBatch, ItemVocabulary, encode
from .network import MemberTransformer
from .samples import SampleArrays, build_vocabulary, cut_samples


@dataclass
class Trained:
    model: MemberTransformer
    vocab: ItemVocabulary
    config: TrainConfig
    metrics: dict


def seed_everything(seed: int, threads: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def build_model(n_items: int, config: TrainConfig) -> MemberTransformer:
    m = config.model
    return MemberTransformer(n_items, m.max_len, m.d_model, m.n_layers, m.n_heads, m.dropout)


def _subset(batch: EncodedBatch, idx: torch.Tensor) -> EncodedBatch:
    return EncodedBatch(batch.items[idx], batch.types[idx], batch.gap_buckets[idx],
                        batch.silence_buckets[idx], batch.features[idx])


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC with tied scores given half credit."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate(model: MemberTransformer, vocab: ItemVocabulary, samples: SampleArrays,
             k: int = 20) -> dict:
    """Churn AUC and next-item HR@k at the newest event of each sample."""
    model.eval()
    batch = encode(vocab, samples.item_ids, samples.types, samples.gaps, samples.silence)
    with torch.no_grad():
        logits, churn = model(batch)
    target = torch.from_numpy(vocab.encode(samples.next_items[:, -1:]).reshape(-1))
    known = target > UNKNOWN_ID
    topk = logits.topk(k, dim=1).indices
    hits = (topk == target[:, None]).any(dim=1) & known
    labelled = ~np.isnan(samples.churned)
    return {"churn_auc": _auc(samples.churned[labelled], churn.numpy()[labelled]),
            f"hr@{k}": float(hits.sum() / max(1, int(known.sum()))),
            "samples": len(samples)}


def train(histories: dict[str, list[MemberEvent]], start_ts: float, label_end_ts: float,
          config: TrainConfig = TrainConfig(),
          progress: Callable[[str], None] = lambda s: None) -> Trained:
    """Train on `histories`; churn labels never look past `label_end_ts`.

    Members are split 90/10 (seeded) into train and validation.
    """
    seed_everything(config.seed, config.threads)
    m = config.model
    members = sorted(histories)
    random.Random(config.seed).shuffle(members)
    n_val = max(1, len(members) // 10)
    val_h = {k: histories[k] for k in members[:n_val]}
    train_h = {k: histories[k] for k in members[n_val:]}
    vocab = build_vocabulary(train_h, m.min_item_count)
    make = lambda h, s: cut_samples(h, start_ts, label_end_ts, config.cutoff_step_days,  # noqa: E731
                                    m.churn_horizon_days, m.max_len, s)
    train_s, val_s = make(train_h, config.seed), make(val_h, config.seed + 1)
    data = encode(vocab, train_s.item_ids, train_s.types, train_s.gaps, train_s.silence)
    next_ids = torch.from_numpy(vocab.encode(train_s.next_items))
    churned = torch.from_numpy(train_s.churned)
    model = build_model(len(vocab), config)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                            lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * ((len(train_s) + config.batch_size - 1) // config.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps)
    gen = torch.Generator().manual_seed(config.seed)
    t0 = time.monotonic()
    for epoch in range(config.epochs):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(train_s), generator=gen).split(config.batch_size):
            b = _subset(data, idx)
            hidden = model.hidden(b)
            # Next-item loss on the newest positions only: older ones repeat
            # across the overlapping cuts of one member and cost most of the time.
            logits = model.item_logits(hidden[:, -config.item_loss_positions:])
            target = next_ids[idx][:, -config.item_loss_positions:]
            target = torch.where(target == UNKNOWN_ID, PAD_ID, target)
            item_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                        ignore_index=PAD_ID)
            churn_loss = F.binary_cross_entropy_with_logits(
                model.churn_logit(hidden[:, -1], b), churned[idx])
            loss = item_loss + config.churn_weight * churn_loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        progress(f"epoch {epoch + 1}/{config.epochs} loss {total / len(train_s):.4f} "
                 f"({time.monotonic() - t0:.0f} s)")
    metrics = evaluate(model, vocab, val_s, k=m.top_k)
    metrics["train_samples"] = len(train_s)
    metrics["train_seconds"] = round(time.monotonic() - t0, 1)
    model.eval()
    return Trained(model, vocab, config, metrics)
