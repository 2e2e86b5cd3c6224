"""Seconds the agent spent waiting instead of preparing batches, by what it
waited for (served as Prometheus summaries: sum, count)."""
from __future__ import annotations

import time

# Its next input from Faust; the `applying` lock (held by a commit or a fill); a free
# slot among the batches in flight; output deliveries it published inline.
REASONS = ("input", "lock", "in_flight", "publish")


class Waits:
    def __init__(self) -> None:
        self.by_reason: dict[str, list[float]] = {reason: [0.0, 0] for reason in REASONS}

    def since(self, reason: str, started: float) -> float:
        """Count a wait that began at monotonic time `started`; returns now."""
        now = time.monotonic()
        wait = self.by_reason[reason]
        wait[0] += now - started
        wait[1] += 1
        return now
