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
from .metrics import auc
from .samples import SampleArrays, build_vocabulary, cut_samples, session_samples


@dataclass
class Trained:
    model: MemberTransformer
    vocab: ItemVocabulary
    config: TrainConfig
    metrics: dict
    value: object = None  # stream.domain.member_value.ValueModel fitted with it, if any


def seed_everything(seed: int, threads: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.set_num_threads(threads)


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def build_model(n_items: int, config: TrainConfig) -> MemberTransformer:
    m = config.model
    return MemberTransformer(n_items, m.max_len, m.d_model, m.n_layers, m.n_heads, m.dropout,
                             m.churn_horizon_days)


def _subset(batch: EncodedBatch, idx: torch.Tensor) -> EncodedBatch:
    return EncodedBatch(batch.items[idx], batch.types[idx], batch.gap_buckets[idx],
                        batch.silence_buckets[idx], batch.features[idx])


def evaluate(model: MemberTransformer, vocab: ItemVocabulary, samples: SampleArrays,
             k: int = 20) -> dict:
    """Churn AUC over each sample's own window; HR@k over every position with a known next item."""
    model.eval()
    batch = encode(vocab, samples.item_ids, samples.types, samples.gaps, samples.silence)
    with torch.no_grad():
        hidden = model.hidden(batch)
        params = model.churn_params(hidden[:, -1], batch)
        quiet = torch.exp(model.log_quiet(params, torch.from_numpy(np.nan_to_num(samples.windows)))[0])
        target = torch.from_numpy(vocab.encode(samples.next_items))
        known = target > UNKNOWN_ID
        hits = 0
        for i in range(0, len(samples), 512):  # the logits of all positions at once are large
            logits = model.recommendable_logits(hidden[i:i + 512])
            top = logits.topk(min(k, logits.shape[-1]), dim=-1).indices
            hits += int(((top == target[i:i + 512, :, None]).any(-1) & known[i:i + 512]).sum())
    labelled = ~np.isnan(samples.churned)
    out = {f"hr@{k}": hits / max(1, int(known.sum())), "samples": len(samples)}
    if labelled.any():
        out["churn_auc"] = auc(samples.churned[labelled], quiet.numpy()[labelled])
    return out


def fit(model: MemberTransformer, vocab: ItemVocabulary, samples: SampleArrays,
        config: TrainConfig, progress: Callable[[str], None]) -> float:
    """Seeded AdamW + one-cycle training; returns seconds spent."""
    data = encode(vocab, samples.item_ids, samples.types, samples.gaps, samples.silence)
    next_ids = torch.from_numpy(vocab.encode(samples.next_items))
    churned = torch.from_numpy(np.nan_to_num(samples.churned))
    windows = torch.from_numpy(np.nan_to_num(samples.windows))
    labelled = torch.from_numpy(~np.isnan(samples.churned))
    use_churn = config.churn_weight > 0 and bool(labelled.any())
    device = torch.device(pick_device(config.device))
    model.to(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                            lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * ((len(samples) + config.batch_size - 1) // config.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps)
    gen = torch.Generator().manual_seed(config.seed)
    t0 = time.monotonic()
    for epoch in range(config.epochs):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(samples), generator=gen).split(config.batch_size):
            b = _subset(data, idx).to(device)
            hidden = model.hidden(b)
            # Next-item loss on the newest positions only: older ones repeat
            # across the overlapping cuts of one member and cost most of the time.
            logits = model.item_logits(hidden[:, -config.item_loss_positions:])
            target = next_ids[idx][:, -config.item_loss_positions:].to(device)
            target = torch.where(target == UNKNOWN_ID, PAD_ID, target)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                   ignore_index=PAD_ID)
            if use_churn:
                quiet, active = model.log_quiet(model.churn_params(hidden[:, -1], b),
                                                windows[idx].to(device))
                y = churned[idx].to(device)
                nll = -(y * quiet + (1 - y) * active)
                mask = labelled[idx].float().to(device)
                loss = loss + config.churn_weight * (nll * mask).sum() / mask.sum().clamp(min=1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        progress(f"epoch {epoch + 1}/{config.epochs} loss {total / len(samples):.4f} "
                 f"({time.monotonic() - t0:.0f} s)")
    model.cpu().eval()
    return round(time.monotonic() - t0, 1)


def train(histories: dict[str, list[MemberEvent]], start_ts: float, label_end_ts: float,
          config: TrainConfig = TrainConfig(),
          progress: Callable[[str], None] = lambda s: None) -> Trained:
    """Train on member histories; churn labels never look past `label_end_ts`.

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
                                    m.churn_horizon_days, m.max_len, s,
                                    min_window_days=config.min_window_days,
                                    event_cuts_per_member=config.event_cuts_per_member)
    train_s, val_s = make(train_h, config.seed), make(val_h, config.seed + 1)
    model = build_model(len(vocab), config)
    seconds = fit(model, vocab, train_s, config, progress)
    metrics = evaluate(model, vocab, val_s, k=m.top_k)
    metrics["train_samples"] = len(train_s)
    metrics["train_seconds"] = seconds
    return Trained(model, vocab, config, metrics)


def train_sessions(sessions: dict[str, list[MemberEvent]], config: TrainConfig,
                   progress: Callable[[str], None] = lambda s: None) -> Trained:
    """Next-item training on sessions (no churn labels); every session trains."""
    seed_everything(config.seed, config.threads)
    m = config.model
    vocab = build_vocabulary(sessions, m.min_item_count)
    samples = session_samples(sessions, m.max_len)
    model = build_model(len(vocab), config)
    seconds = fit(model, vocab, samples, config, progress)
    return Trained(model, vocab, config, {"train_samples": len(samples), "train_seconds": seconds})
