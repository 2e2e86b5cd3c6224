"""`memberstream evaluate <data set>`: one function per data set.

Hyperparameters per data set were chosen on validation splits only (see
docs/model.md); each run prints its tables and returns them as a dict.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..config import ModelConfig, TrainConfig
from ..datasets import (DataError, YOOCHOOSE_REFERENCES, cdnow, diginetica, online_retail,
                        yoochoose)
from ..encoding import DAY
from . import churn, next_item, value
from .report import table

UTC = timezone.utc
NEXT_ITEM_COLUMNS = ["model", "points", "hr@20", "mrr@20", "ndcg@20"]
CHURN_COLUMNS = ["model", "auc", "pr_auc", "brier", "f1"]
# The alert threshold of the pipeline (Settings.churn_alert_threshold).
ALERT_THRESHOLD = 0.6

# Sessions: short sequences of clicks or views, next-item loss on every position.
# Dropout 0.4 was the best of 0.1..0.5 on YooChoose train_tr -> train_valid.
SESSION_CONFIG = TrainConfig(
    epochs=20, batch_size=128, lr=3e-3, churn_weight=0.0, item_loss_positions=20,
    model=ModelConfig(max_len=20, d_model=64, min_item_count=1, dropout=0.4))


def _with_model(config: TrainConfig, **changes) -> TrainConfig:
    return replace(config, model=replace(config.model, **changes))


def _day(y: int, m: int, d: int) -> float:
    return datetime(y, m, d, tzinfo=UTC).timestamp()


def _next_item_report(title: str, result: dict) -> str:
    out = [table(f"{title}: all test points", result["full"], NEXT_ITEM_COLUMNS)]
    if "references" in result:
        out.append(table("the points the reference files cover (session-rec top-50 lists)",
                         result["references"], NEXT_ITEM_COLUMNS))
    return "\n\n".join(out)


def run_yoochoose(data_dir: Path, predictions: Path | None, validation: bool = False,
                  config: TrainConfig = SESSION_CONFIG, progress: Callable = print):
    """Train on train_full, test on test (or train_tr -> train_valid with `validation`)."""
    train_part, test_part = ("train_tr", "train_valid") if validation else ("train_full", "test")
    refs = None if validation else Path(data_dir) / YOOCHOOSE_REFERENCES
    train, test = yoochoose(data_dir, train_part), yoochoose(data_dir, test_part)
    if set(train) & set(test):
        raise DataError(f"{train_part} and {test_part} share sessions")
    result = next_item.evaluate(train, test, config, predictions, refs, progress)
    result["split"] = f"{train_part} -> {test_part}"
    return result, _next_item_report(f"YooChoose-100k {result['split']}", result)


def diginetica_split(sessions: dict, validation: bool):
    """Temporal split by session start day: the last 7 days are the test.

    With `validation`, the test days are dropped and the 7 days before them
    become the test. Test clicks on items never seen in training are removed
    and sessions left with fewer than 2 clicks dropped (session-rec's rule).
    """
    start = {s: ev[0].ts for s, ev in sessions.items()}
    last_day = max(start.values()) // DAY
    if validation:
        sessions = {s: ev for s, ev in sessions.items() if start[s] // DAY <= last_day - 7}
        last_day -= 7
    cut = (last_day - 6) * DAY
    train = {s: ev for s, ev in sessions.items() if start[s] < cut and len(ev) >= 2}
    known = {e.item_id for ev in train.values() for e in ev}
    test = {}
    for s, ev in sessions.items():
        if start[s] >= cut:
            kept = [e for e in ev if e.item_id in known]
            if len(kept) >= 2:
                test[s] = kept
    return train, test, cut


# The Diginetica sample is small and sparse (7,140 items in 12,390 views);
# dropout 0.3 was the best of 0.1..0.5 on its validation split (docs/model.md).
DIGINETICA_CONFIG = _with_model(SESSION_CONFIG, dropout=0.3)


def run_diginetica(data_dir: Path, predictions: Path | None, validation: bool = False,
                   config: TrainConfig = DIGINETICA_CONFIG, progress: Callable = print):
    train, test, cut = diginetica_split(diginetica(data_dir), validation)
    day = datetime.fromtimestamp(cut, UTC).date().isoformat()
    result = next_item.evaluate(train, test, config, predictions, None, progress)
    result["split"] = f"sessions starting before {day} -> from {day} on" + (
        " (validation)" if validation else "")
    return result, _next_item_report(f"Diginetica sample, {result['split']}", result)


# Batch 1024 for 3 epochs matched batch 512 for 4 on the validation split in
# less time; weekly cuts without own-event cuts gained 0.002 AUC for 3x the time.
CDNOW_CONFIG = TrainConfig(
    epochs=3, batch_size=1024, lr=3e-3, churn_weight=1.0, item_loss_positions=1,
    cutoff_step_days=28, min_window_days=14.0,
    model=ModelConfig(max_len=20, churn_horizon_days=273.0, min_item_count=1, top_k=1))


def run_cdnow(data_dir: Path, predictions: Path | None, validation: bool = False,
              config: TrainConfig = CDNOW_CONFIG, progress: Callable = print):
    """Calibration 1997-01-01..1997-09-30, holdout 1997-10-01..1998-06-30.

    With `validation`, the same protocol is moved into the calibration
    period: cutoff 1997-07-01, holdout to 1997-09-30 (holdout data unused).
    """
    events = cdnow(data_dir)
    if validation:
        cutoff, end = _day(1997, 7, 1), _day(1997, 10, 1)
        config = _with_model(config, churn_horizon_days=(end - cutoff) / DAY)
    else:
        cutoff, end = _day(1997, 10, 1), _day(1998, 7, 1)
    result, _, _ = churn.evaluate_churn(events, _day(1997, 1, 1), cutoff, end, config,
                                        ALERT_THRESHOLD, predictions, "customer_id", progress)
    result["split"] = _split(cutoff, end)
    return result, _churn_report("CDNOW", result)


# The pipeline's training settings (churn_weight 2, 8 epochs) won on the
# validation split over churn_weight 1 with 6 epochs.
RETAIL_CONFIG = TrainConfig(
    epochs=8, batch_size=256, lr=3e-3, churn_weight=2.0, item_loss_positions=16,
    cutoff_step_days=7, min_window_days=7.0,
    model=ModelConfig(churn_horizon_days=92.0))


def run_online_retail(data_dir: Path, predictions: Path | None, validation: bool = False,
                      config: TrainConfig = RETAIL_CONFIG, progress: Callable = print):
    """Purchases 2010-12-01..2011-02-28 in; churn and purchases 2011-03-01..2011-05-31.

    With `validation`: cutoff 2011-01-15, holdout to 2011-02-28 (45 days).
    """
    if validation:
        cutoff, end = _day(2011, 1, 15), _day(2011, 3, 1)
        config = _with_model(config, churn_horizon_days=(end - cutoff) / DAY)
    else:
        cutoff, end = _day(2011, 3, 1), _day(2011, 6, 1)
    events = [e for e in online_retail(data_dir) if e.ts < end]
    result, rows, top = churn.evaluate_churn(
        events, _day(2010, 12, 1), cutoff, end, config, ALERT_THRESHOLD, predictions,
        "member_id", progress)
    result["split"] = _split(cutoff, end)
    result["next_purchase"] = churn.evaluate_next_purchase(events, cutoff, end, rows, top)
    result["member_value"] = value.evaluate_value(events, cutoff, end, rows)
    cols = ["model"] + [f"{s} {m}" for s in ("all", "repeat", "new")
                        for m in ("members", "hr@20", "ndcg@20")]
    return result, "\n\n".join([
        _churn_report("Online Retail", result),
        table("next-purchase recommendations at the cutoff (returning members)",
              result["next_purchase"], cols),
        table(f"member value over the {result['member_value']['horizon_days']:.0f} days after the cutoff",
              result["member_value"]["table"],
              ["model", "purchases mae", "purchases bias", "spend spearman", "spend mae"])])


def _split(cutoff: float, end: float) -> str:
    f = lambda t: datetime.fromtimestamp(t, UTC).date().isoformat()  # noqa: E731
    return f"events before {f(cutoff)} in; churn = none from {f(cutoff)} to {f(end - DAY)}"


def _churn_report(title: str, result: dict) -> str:
    head = (f"{title}: {result['members']} members, {result['split']}, "
            f"churn rate {result['churn_rate']:.3f}, F1 at the alert threshold "
            f"{result['threshold']}")
    return table(head, result["churn"], CHURN_COLUMNS)


RUNS = {"yoochoose": run_yoochoose, "cdnow": run_cdnow, "online-retail": run_online_retail,
        "diginetica": run_diginetica}


def run(dataset: str, data_dir: Path, predictions: Path | None, validation: bool,
        progress: Callable = print):
    if dataset not in RUNS:
        raise DataError(f"unknown data set {dataset!r}; choose from {', '.join(RUNS)}")
    return RUNS[dataset](data_dir, predictions, validation, progress=progress)
