"""Next-item evaluation with the session-rec protocol.

For each test session and each position p (0-based), the clicks 0..p are
the input and the click at p+1 is the target. The transformer is the
pipeline's network and encoding (`models.serving.predict`, the served
computation), trained from scratch on the training sessions only.
"""
from __future__ import annotations

import csv
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import TrainConfig
from ..datasets import MemberEvent
from ..metrics import next_item_metrics, rank_of
from ..samples import sequence_rows
from ..serving import predict
from ..train import Trained, train_sessions
from .baselines import CoOccurrence, Popularity, SessionKNN, Successor

K = 20
LIST_LENGTH = 50  # session-rec's files hold top-50 lists


@dataclass(frozen=True)
class Point:
    session: str
    position: int
    events: list[MemberEvent]  # the whole session; input = events[:position + 1]

    @property
    def history(self) -> list[str]:
        return [e.item_id for e in self.events[:self.position + 1]]

    @property
    def target(self) -> str:
        return self.events[self.position + 1].item_id


def points(sessions: dict[str, list[MemberEvent]]) -> list[Point]:
    return [Point(s, p, ev) for s, ev in sessions.items() for p in range(len(ev) - 1)]


def in_time_order(sessions: dict[str, list[MemberEvent]]) -> list[list[str]]:
    ordered = sorted(sessions.items(), key=lambda kv: (kv[1][0].ts, kv[0]))
    return [[e.item_id for e in ev] for _, ev in ordered]


def time_ranges(train: dict[str, list[MemberEvent]], test: dict[str, list[MemberEvent]]) -> dict:
    """Event-time extent of both sides, recorded with every result (a temporal split shows here)."""
    iso = lambda ts: datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")  # noqa: E731
    span = lambda d: (min(ev[0].ts for ev in d.values()), max(ev[-1].ts for ev in d.values()))  # noqa: E731
    (a, b), (c, d) = span(train), span(test)
    return {"train_events": [iso(a), iso(b)], "test_events": [iso(c), iso(d)]}


def transformer_lists(trained: Trained, pts: list[Point], k: int = LIST_LENGTH,
                      batch: int = 1024) -> list[tuple[list[str], list[float]]]:
    """Top-k items and scores after each point, exactly as the served model computes them."""
    L = trained.config.model.max_len
    out = []
    for i in range(0, len(pts), batch):
        chunk = pts[i:i + batch]
        rows = [sequence_rows(p.events, p.position + 1, p.events[p.position].ts, L) for p in chunk]
        _, items, scores = predict(
            trained.model, trained.vocab, np.array([r[0] for r in rows], dtype=object),
            np.array([r[1] for r in rows], dtype=np.int8),
            np.array([r[2] for r in rows], dtype=np.float32),
            np.zeros((len(rows), 1), dtype=np.float32), k)
        out += [([x.decode() for x in it], [float(s) for s in sc]) for it, sc in zip(items, scores)]
    return out


def write_predictions(path: Path, pts: list[Point], lists) -> None:
    """session-rec's format: SessionId;Position;Recommendations;Scores."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fh.write("SessionId;Position;Recommendations;Scores\n")
        for p, (items, scores) in zip(pts, lists):
            fh.write(f"{p.session};{p.position};{','.join(items)};"
                     f"{','.join(f'{s:.6g}' for s in scores)}\n")


def read_references(folder: Path) -> dict[str, dict[tuple[str, int], list[str]]]:
    """{algorithm: {(session, position): top-50}} from recoms_<data>_<algorithm>.csv files."""
    out = {}
    for path in sorted(folder.glob("recoms_*.csv")):
        name = path.stem.rsplit("_", 1)[-1]
        with path.open() as fh:
            out[name] = {(r["SessionId"], int(r["Position"])): r["Recommendations"].split(",")
                         for r in csv.DictReader(fh, delimiter=";")}
    return out


def evaluate(train: dict[str, list[MemberEvent]], test: dict[str, list[MemberEvent]],
             config: TrainConfig, predictions: Path | None = None,
             references: Path | None = None,
             progress: Callable[[str], None] = print) -> dict:
    """Train the transformer and the baselines on `train`, score every test point."""
    pts = points(test)
    progress(f"{len(train)} training sessions, {len(test)} test sessions, {len(pts)} points")
    trained = train_sessions(train, config, progress)
    lists = transformer_lists(trained, pts)
    if predictions is not None:
        write_predictions(predictions, pts, lists)
    ranks = {"transformer": [rank_of(p.target, items) for p, (items, _) in zip(pts, lists)]}
    ordered = in_time_order(train)
    for model in (Popularity(ordered), Successor(ordered), CoOccurrence(ordered),
                  SessionKNN(ordered)):
        ranks[model.name] = [rank_of(p.target, model.recommend(p.history, K)) for p in pts]
    full = [{"model": name, **next_item_metrics(r, K)} for name, r in ranks.items()]
    result = {"full": full, "train_seconds": trained.metrics["train_seconds"],
              "config": config.to_dict(), **time_ranges(train, test)}
    if references is not None:
        refs = read_references(references)
        index = {(p.session, p.position): n for n, p in enumerate(pts)}
        rows = []
        keys = sorted(set.intersection(*(set(r) for r in refs.values())))
        missing = [key for key in keys if key not in index]
        if missing:
            raise ValueError(f"{len(missing)} reference points are not in the test data")
        for name, recs in refs.items():
            rows.append({"model": name, **next_item_metrics(
                [rank_of(pts[index[key]].target, recs[key]) for key in keys], K)})
        rows.append({"model": "transformer", **next_item_metrics(
            [ranks["transformer"][index[key]] for key in keys], K)})
        result["references"] = rows
    return result
