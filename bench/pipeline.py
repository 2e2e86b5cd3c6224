"""The full memberstream worker's throughput over the pre-loaded bench log."""
from __future__ import annotations

import time
from typing import Callable, Optional

from stream.contract import metrics as names
from stream.tools.launcher import WorkerProcess, records_taken


def pipeline_eps(worker: WorkerProcess, n: int, on_first: Optional[Callable[[], None]] = None) -> dict:
    """The worker consumes the pre-loaded shop.events from the beginning: events/s from
    its first processed record until all n are processed AND every member they touched
    is scored, published and written to the changelog. `on_first` is called when the
    first record is seen processed."""
    first = None
    deadline = time.monotonic() + 900
    while True:
        m = worker.metrics()
        done = records_taken(m)
        now = time.monotonic()
        if done and first is None:
            first, at_first = (now, done), m
            if on_first is not None:
                on_first()
        if done >= n and m.get(names.SCORING_BACKLOG, 0) == 0 and m.get(names.CHANGELOG_BACKLOG, 0) == 0:
            break
        if now > deadline:
            raise TimeoutError(f"pipeline: {done} of {n} events after 900 s")
        time.sleep(0.1)
    t0, d0 = first
    return {"eps": (n - d0) / (now - t0), "events": int(m[names.EVENTS]),
            "dead_lettered": int(m[names.DEAD_LETTERED]),
            "frames": int(m[names.FRAMES]),
            "scored_rows": int(m.get(names.SCORED_ROWS, 0)),
            "triton_requests": int(m[names.TRITON_REQUESTS]),
            "alerts": int(m[names.ALERTS]),
            "segment_changes": int(m[names.SEGMENT_CHANGES]),
            "recommendation_updates": int(m[names.RECOMMENDATION_UPDATES]),
            "checkpoint_rows": int(m.get(names.CHECKPOINT_ROWS, 0)),
            "checkpoints_known": int(m.get(names.CHECKPOINTS_KNOWN, 0)),
            "checkpoint_updates": int(m.get(names.CHECKPOINT_UPDATES, 0)),
            # Seconds the agent waited over the measured span, by reason (stream/processing/waits.py).
            "agent_wait_s": {k[k.index('"') + 1:-2]: round(v - at_first.get(k, 0.0), 3) for k, v in m.items()
                             if k.startswith(f"{names.AGENT_WAIT}_sum{{")},
            "seconds": round(now - t0, 3)}
