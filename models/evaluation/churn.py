"""Churn (and next-purchase) evaluation at a calendar cutoff.

The input is every member's events before the cutoff, replayed as events of
the topic contract through the pipeline's own parsing and state code
(`stream.parsing`, `stream.member_state`), so the model sees exactly the
rows the streaming system would send to Triton at the cutoff: the rolling
sequence plus the silence since the newest event. Churn = no event in
[cutoff, holdout_end). The model and its vocabulary are trained on the
events before the cutoff alone; labels of training samples never look past
the cutoff either (`models.samples.cut_samples`).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import orjson

from ..config import TrainConfig
from ..datasets import MemberEvent, by_member, contract_events
from ..encoding import DAY
from ..metrics import churn_metrics, set_metrics
from ..serving import predict
from ..train import Trained, train
from .baselines import Popularity
from .bgnbd import BGNBD

WEEK = 7 * DAY


@dataclass
class CutoffRows:
    members: list[str]
    item_ids: np.ndarray
    types: np.ndarray
    gaps: np.ndarray
    silence: np.ndarray
    states: dict = None  # member -> stream.domain.member_state.MemberState at the cutoff
    items: object = None  # stream.domain.item_stats.ItemStats counted from the same events


def stream_rows(events: list[MemberEvent], cutoff_ts: float, max_len: int) -> CutoffRows:
    """Model rows at the cutoff, built by the streaming system's parser and state; also
    the item statistics a worker would have counted from the same events."""
    from stream.domain.member_state import MemberState, apply_event, model_inputs
    from stream.domain.parsing import Rejected, parse_event
    from stream.processing.recommender import item_stats_of
    from stream.settings import Settings

    items = item_stats_of(Settings(_env_file=None))
    states: dict[str, MemberState] = {}
    for record in contract_events(e for e in events if e.ts < cutoff_ts):
        event = parse_event(orjson.dumps(record), None, 1 << 20)
        if isinstance(event, Rejected):
            raise ValueError(f"event {record['event_id']} rejected: {event.detail}")
        state = states.setdefault(event.member_id, MemberState(event.member_id, 0))
        if not state.is_duplicate(event.event_id):
            apply_event(state, event, max_len)
            items.observe_newest(state, event.ts, event.category)
    members = sorted(states)
    rows = [model_inputs(states[m], max_len) for m in members]
    return CutoffRows(
        members=members, item_ids=np.array([r[0] for r in rows], dtype=object),
        types=np.array([r[1] for r in rows], dtype=np.int8),
        gaps=np.array([r[2] for r in rows], dtype=np.float32),
        silence=np.array([[cutoff_ts - states[m].last_ts / 1000.0] for m in members],
                         dtype=np.float32), states=states, items=items)


def score(trained: Trained, rows: CutoffRows, k: int, batch: int = 2048):
    """(churn probabilities [N], top-k (item, probability) lists) from the served computation."""
    churn, top = [], []
    for i in range(0, len(rows.members), batch):
        s = slice(i, i + batch)
        c, items, probs = predict(trained.model, trained.vocab, rows.item_ids[s], rows.types[s],
                                  rows.gaps[s], rows.silence[s], k)
        churn.append(c)
        top += [[(x.decode(), float(p)) for x, p in zip(row, ps)] for row, ps in zip(items, probs)]
    return np.concatenate(churn), top


def rfm(histories: dict[str, list[MemberEvent]], members: list[str], cutoff_ts: float):
    """BG/NBD inputs in weeks: repeat purchase days x, t_x, T (to the end of the last day)."""
    x, t_x, T = [], [], []
    for m in members:
        days = sorted({int(e.ts // DAY) for e in histories[m] if e.ts < cutoff_ts})
        x.append(len(days) - 1)
        t_x.append((days[-1] - days[0]) * DAY / WEEK)
        T.append((cutoff_ts / DAY - 1 - days[0]) * DAY / WEEK)
    return np.array(x, dtype=np.float64), np.array(t_x), np.array(T)


def evaluate_churn(events: list[MemberEvent], start_ts: float, cutoff_ts: float,
                   holdout_end_ts: float, config: TrainConfig, threshold: float,
                   predictions: Path | None, id_column: str,
                   progress: Callable[[str], None] = print) -> tuple[dict, CutoffRows, list[list[str]]]:
    """Churn table at the cutoff; also the rows scored and each member's top-k items."""
    histories = by_member(events)
    calibration = {m: [e for e in ev if e.ts < cutoff_ts] for m, ev in histories.items()}
    calibration = {m: ev for m, ev in calibration.items() if ev}
    holdout_days = (holdout_end_ts - cutoff_ts) / DAY
    if abs(config.model.churn_horizon_days - holdout_days) > 1e-6:
        raise ValueError(f"model horizon {config.model.churn_horizon_days} d, holdout {holdout_days} d")
    progress(f"{len(calibration)} members with events before the cutoff; "
             f"holdout {holdout_days:.0f} days")
    trained = train(calibration, start_ts, cutoff_ts, config, progress)
    rows = stream_rows([e for ev in calibration.values() for e in ev], cutoff_ts,
                       config.model.max_len)
    churn, top = score(trained, rows, config.model.top_k)
    labels = np.array([float(not any(cutoff_ts <= e.ts < holdout_end_ts for e in histories[m]))
                       for m in rows.members])
    if predictions is not None:
        predictions.parent.mkdir(parents=True, exist_ok=True)
        with predictions.open("w") as fh:
            fh.write(f"{id_column},churn_probability\n")
            fh.writelines(f"{m},{p:.6f}\n" for m, p in zip(rows.members, churn))
    x, t_x, T = rfm(calibration, rows.members, cutoff_ts)
    bg = BGNBD.fit(x, t_x, T)
    t = holdout_days * DAY / WEEK
    recency = rows.silence.reshape(-1) / DAY
    table = [
        {"model": "transformer churn head", **churn_metrics(labels, churn, True, threshold)},
        {"model": "recency only (days silent)", **churn_metrics(labels, recency, False, threshold)},
        {"model": "BG/NBD P(no purchase in holdout)",
         **churn_metrics(labels, bg.p_no_purchase(x, t_x, T, t), True, threshold)},
        {"model": "BG/NBD expected purchases (negated)",
         **churn_metrics(labels, -bg.expected_purchases(x, t_x, T, t), False, threshold)},
    ]
    result = {"members": len(rows.members), "churn_rate": float(labels.mean()),
              "threshold": threshold, "churn": table,
              "bgnbd": {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b},
              "train": trained.metrics, "config": config.to_dict()}
    return result, rows, top


def evaluate_next_purchase(events: list[MemberEvent], cutoff_ts: float, holdout_end_ts: float,
                           rows: CutoffRows, top: list[list[tuple[str, float]]], k: int = 20,
                           extra: dict | None = None) -> list[dict]:
    """HR@k / NDCG@k of each returning member's top-k at the cutoff against holdout purchases.

    `rows` and `top` are what `evaluate_churn` scored: the transformer's lists, which
    the pipeline's blend (stream/domain/policies/recommendation_policy.py, with the
    default settings) mixes with the member's history and the item statistics counted
    from the same events; "discover" is the same blend with repeat_share 0 (only items
    new to the member: what a shop sends as "you may also like"). `extra`: more lists
    to score, {name: {member: items}} (evaluate-stream's, read from the stream).

    Split into repeat items (bought before the cutoff) and new items; a member
    counts in a split when they buy at least one item of that kind.
    Baselines: popularity, co-occurrence within invoices with the member's
    recent items, and the member's own past purchases by frequency.
    """
    histories = by_member(events)
    before = {m: [e.item_id for e in histories[m] if e.ts < cutoff_ts] for m in rows.members}
    after = {m: {e.item_id for e in histories[m] if cutoff_ts <= e.ts < holdout_end_ts}
             for m in rows.members}
    invoices: dict[str, list[str]] = {}
    for e in sorted((e for ev in histories.values() for e in ev if e.ts < cutoff_ts),
                    key=lambda e: e.ts):
        invoices.setdefault(e.session_id or e.member_id, []).append(e.item_id)
    pop = Popularity(invoices.values())
    pairs: dict[str, Counter] = {}
    for items in invoices.values():
        distinct = set(items)
        if len(distinct) > 200:
            continue  # wholesale invoices would dominate every list
        for a in distinct:
            bucket = pairs.setdefault(a, Counter())
            for b in distinct:
                if b != a:
                    bucket[b] += 1.0 / len(distinct)

    def cooccurrence(history: list[str]) -> list[str]:
        scores: Counter = Counter()
        for item in dict.fromkeys(reversed(history[-50:])):
            scores.update(pairs.get(item, {}))
        return pop.order(dict(scores), k)

    def own(history: list[str]) -> list[str]:
        c = Counter(history)
        last = {item: n for n, item in enumerate(history)}
        return pop.order({i: c[i] + last[i] / (10 * len(history)) for i in c}, k)

    from dataclasses import replace

    from stream.domain.policies.recommendation_policy import blend_items
    from stream.processing.recommender import blend_of
    from stream.settings import Settings

    blend = blend_of(Settings(_env_file=None))
    discover = replace(blend, repeat_share=0.0)

    def blended(b, member, answer):
        state = rows.states[member]
        model_items, model_scores = ([i for i, _ in answer], [p for _, p in answer]) if (
            state.n_events >= b.cold_start_events) else ([], [])
        return [i for i, _, _ in blend_items(state, model_items, model_scores, rows.items, b, k)]

    lists = {**(extra or {}), "memberstream blend (served)": {m: blended(blend, m, t) for m, t in zip(rows.members, top)},
             "memberstream blend, discover": {m: blended(discover, m, t) for m, t in zip(rows.members, top)},
             "transformer": {m: [i for i, _ in t] for m, t in zip(rows.members, top)},
             "popularity": {m: pop.recommend([], k) for m in rows.members},
             "co-occurrence": {m: cooccurrence(before[m]) for m in rows.members},
             "own past purchases": {m: own(before[m]) for m in rows.members}}
    table = []
    for name, recs in lists.items():
        row = {"model": name}
        for split in ("all", "repeat", "new"):
            hits, ndcgs = [], []
            for m in rows.members:
                bought = after[m]
                relevant = (bought if split == "all" else
                            bought & set(before[m]) if split == "repeat" else bought - set(before[m]))
                if relevant:
                    h, n = set_metrics(recs[m], relevant, k)
                    hits.append(h)
                    ndcgs.append(n)
            row[f"{split} members"] = len(hits)
            row[f"{split} hr@{k}"] = float(np.mean(hits)) if hits else float("nan")
            row[f"{split} ndcg@{k}"] = float(np.mean(ndcgs)) if ndcgs else float("nan")
        table.append(row)
    return table
