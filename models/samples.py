"""Training samples: a member's sequence cut at a point in event time.

A sample is what the streaming system would send to the model for that
member at that moment (the last `max_len` events, their gaps, the silence
since the newest one), plus the labels: the next item after each event and
whether the member stays silent during an observation window after the cut.
The window is the churn horizon where the data reaches that far and shorter
near the end of the data (never shorter than `min_window_days`); the churn
head is a survival model and learns from windows of any length.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .datasets import MemberEvent
from .encoding import DAY, EVENT_TYPES, ItemVocabulary

TYPE_CODE = {t: i + 1 for i, t in enumerate(EVENT_TYPES)}


@dataclass
class SampleArrays:
    item_ids: np.ndarray   # [N, L] object (bytes), newest last
    types: np.ndarray      # [N, L] int8
    gaps: np.ndarray       # [N, L] float32
    silence: np.ndarray    # [N, 1] float32
    next_items: np.ndarray  # [N, L] object (bytes): the item after each event, b"" if none
    churned: np.ndarray    # [N] float32: 1 = no event within the window, NaN = unknown
    windows: np.ndarray    # [N] float32: observation window in days, NaN = unknown

    def __len__(self) -> int:
        return len(self.churned)


def build_vocabulary(histories: dict[str, list[MemberEvent]], min_count: int) -> ItemVocabulary:
    counts = Counter(e.item_id for events in histories.values() for e in events)
    kept = sorted((item for item, c in counts.items() if c >= min_count),
                  key=lambda item: (-counts[item], item))
    return ItemVocabulary(kept, [counts[i] for i in kept])


def sequence_rows(events: list[MemberEvent], end: int, cut_ts: float, max_len: int):
    """Raw rows for the model: events[:end] cut at time cut_ts."""
    start = max(0, end - max_len)
    window = events[start:end]
    pad = max_len - len(window)
    items = [b""] * pad + [e.item_id.encode() for e in window]
    types = [0] * pad + [TYPE_CODE[e.type] for e in window]
    gaps = [0.0] * pad + [
        (e.ts - events[start + i - 1].ts) if start + i > 0 else 0.0 for i, e in enumerate(window)]
    nxt = [b""] * pad + [events[start + i + 1].item_id.encode() if start + i + 1 < len(events)
                         else b"" for i in range(len(window))]
    return items, types, gaps, cut_ts - window[-1].ts, nxt


def cut_samples(histories: dict[str, list[MemberEvent]], start_ts: float, label_end_ts: float,
                step_days: int, horizon_days: float, max_len: int, seed: int,
                event_cuts_per_member: int = 5, min_window_days: float = 7.0) -> SampleArrays:
    """Samples at calendar cuts every `step_days` and at some of each member's own events.

    A cut at time c is labelled over the window (c, c + w] with
    w = min(horizon, label_end_ts - c) >= min_window_days, so no label looks
    past the data the caller allows.
    """
    rng = random.Random(seed)
    last_cut = label_end_ts - min_window_days * DAY
    calendar = np.arange(start_ts + step_days * DAY, last_cut + 1, step_days * DAY)
    rows = []
    for member in sorted(histories):
        events = histories[member]
        times = np.array([e.ts for e in events])
        cuts = [float(c) for c in calendar if times[0] <= c]
        own = [float(t) for t in times if t <= last_cut]
        cuts += rng.sample(own, min(event_cuts_per_member, len(own)))
        for c in cuts:
            end = int(np.searchsorted(times, c, side="right"))
            window = min(horizon_days * DAY, label_end_ts - c)
            churned = float(not np.any((times > c) & (times <= c + window)))
            rows.append((*sequence_rows(events, end, c, max_len), churned, window / DAY))
    return _arrays(rows)


def session_samples(sessions: dict[str, list[MemberEvent]], max_len: int) -> SampleArrays:
    """Next-item samples from sessions: every transition of every session once.

    A session longer than `max_len` is cut into overlapping windows so that
    each of its clicks is a target exactly once. Sessions carry no churn label.
    """
    rows = []
    for key in sorted(sessions):
        events = sessions[key]
        end = len(events)
        while end >= 2:
            rows.append((*sequence_rows(events, end, events[end - 1].ts, max_len),
                         float("nan"), float("nan")))
            end -= max_len - 1
    return _arrays(rows)


def _arrays(rows: list) -> SampleArrays:
    item_ids, types, gaps, silence, nxt, churned, windows = zip(*rows)
    return SampleArrays(
        item_ids=np.array(item_ids, dtype=object), types=np.array(types, dtype=np.int8),
        gaps=np.array(gaps, dtype=np.float32),
        silence=np.array(silence, dtype=np.float32).reshape(-1, 1),
        next_items=np.array(nxt, dtype=object), churned=np.array(churned, dtype=np.float32),
        windows=np.array(windows, dtype=np.float32))
