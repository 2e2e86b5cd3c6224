"""The full memberstream worker's throughput over the pre-loaded bench log."""
from __future__ import annotations

import time
from typing import Callable, Optional

from stream.launcher import Worker, records_taken


def pipeline_eps(worker: Worker, n: int, on_first: Optional[Callable[[], None]] = None) -> dict:
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
        if (done >= n and m.get("memberstream_scoring_backlog", 0) == 0
                and m.get("memberstream_changelog_backlog", 0) == 0):
            break
        if now > deadline:
            raise TimeoutError(f"pipeline: {done} of {n} events after 900 s")
        time.sleep(0.1)
    t0, d0 = first
    return {"eps": (n - d0) / (now - t0), "events": int(m["memberstream_events_total"]),
            "dead_lettered": int(m["memberstream_dead_lettered_total"]),
            "frames": int(m["memberstream_frames_total"]),
            "scored_rows": int(m.get("memberstream_scored_rows_total", 0)),
            "triton_requests": int(m["memberstream_triton_requests_total"]),
            "alerts": int(m["memberstream_alerts_total"]),
            "segment_changes": int(m["memberstream_segment_changes_total"]),
            "recommendation_updates": int(m["memberstream_recommendation_updates_total"]),
            "checkpoint_rows": int(m.get("memberstream_checkpoint_rows_total", 0)),
            "checkpoints_known": int(m.get("memberstream_checkpoints_known_total", 0)),
            "checkpoint_updates": int(m.get("memberstream_checkpoint_updates_total", 0)),
            # Seconds the agent waited over the measured span, by reason (stream/ingest_agent.py).
            "agent_wait_s": {k[k.index('"') + 1:-2]: round(v - at_first.get(k, 0.0), 3) for k, v in m.items()
                             if k.startswith("memberstream_agent_wait_seconds_sum{")},
            "seconds": round(now - t0, 3)}
