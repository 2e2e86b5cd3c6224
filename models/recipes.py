"""What each model is trained on: one function per recipe, used by the CLI."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .config import TrainConfig
from .datasets import by_member, online_retail
from .member_value import fit_on_events
from .train import Trained, train

UTC = timezone.utc
RETAIL_START = datetime(2010, 12, 1, tzinfo=UTC)
RETAIL_END = datetime(2011, 5, 31, 23, 59, 59, tzinfo=UTC)


def online_retail_model(data_dir: Path, config: TrainConfig = TrainConfig(),
                        progress: Callable[[str], None] = print) -> tuple[Trained, str]:
    """The demo/pipeline model: all Online Retail members, Dec 2010 to May 2011.

    Churn labels need the full horizon after a cut, so cuts stop 90 days
    before 2011-05-31; the sequences before each cut are the inputs.
    """
    events = online_retail(data_dir)
    histories = by_member(events)
    progress(f"online-retail: {len(histories)} members, "
             f"{sum(len(v) for v in histories.values())} purchase lines")
    trained = train(histories, RETAIL_START.timestamp(), RETAIL_END.timestamp(), config, progress)
    trained.value = fit_on_events(events, RETAIL_END.timestamp() + 1, config.model.max_len)
    progress(f"member value (BG/NBD + Gamma-Gamma): {trained.value}")
    note = "UCI Online Retail 2010-12-01..2011-05-31, members split 90/10 for validation"
    return trained, note
