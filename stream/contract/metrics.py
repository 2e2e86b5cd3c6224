"""The names of every metric a worker serves on `/metrics`.

The web pages, the launcher, the demo and the bench use these names; no
other code of theirs spells one (the integration tests spell them out, as an
outside consumer would). Counters end in `_total`, durations are in seconds.
"""
from __future__ import annotations

PREFIX = "memberstream_"


def counter(name: str) -> str:
    return f"{PREFIX}{name}_total"


def seconds(name: str) -> str:
    """A duration summary (`_sum` and `_count` follow)."""
    return f"{PREFIX}{name}_seconds"


# What the processing core counts, by the key it counts it under (`MemberProcessor.totals`).
PROCESSOR_COUNTS = ("events", "dead_lettered", "duplicates", "alerts", "recommendation_updates",
                    "segment_changes", "anomalies", "scoring_failures", "scored_rows", "redelivered",
                    "gap_filled", "checkpoint_rows", "checkpoints_known", "checkpoint_updates",
                    "processing_failures", "late_events", "explanations_unavailable")
EVENTS = counter("events")
DEAD_LETTERED = counter("dead_lettered")
DUPLICATES = counter("duplicates")
ALERTS = counter("alerts")
RECOMMENDATION_UPDATES = counter("recommendation_updates")
SEGMENT_CHANGES = counter("segment_changes")
ANOMALIES = counter("anomalies")
SCORED_ROWS = counter("scored_rows")
CHECKPOINT_ROWS = counter("checkpoint_rows")
CHECKPOINTS_KNOWN = counter("checkpoints_known")
CHECKPOINT_UPDATES = counter("checkpoint_updates")
# Input records a worker has finished with: applied, dead-lettered, or dropped as duplicates.
RECORDS_TAKEN = (EVENTS, DEAD_LETTERED, DUPLICATES)

TRITON_REQUESTS = counter("triton_requests")
BATCHED_RECORDS = counter("batched_records")  # shop.events records the batcher framed
FRAMES = counter("frames")

# Durations, by the key the processor times them under (`MemberProcessor.timings`).
PROCESSOR_TIMINGS = ("scoring_wait", "scoring_request", "checkpoint_scoring")
AGENT_WAIT = seconds("agent_wait")  # label reason: input, lock, in_flight, publish

# Gauges.
SCORING_BACKLOG = f"{PREFIX}scoring_backlog"      # members awaiting scoring
CHANGELOG_BACKLOG = f"{PREFIX}changelog_backlog"  # states, offsets and outputs not yet committed
MEMBERS = f"{PREFIX}members"                      # members in this worker's table
WATERMARK = f"{PREFIX}watermark_seconds"          # label partition: its event-time watermark
# Label state (closed, half_open, open): 1 for the scoring circuit's state, 0 for the others.
TRITON_CIRCUIT = f"{PREFIX}triton_circuit"
TRITON_CIRCUIT_OPENINGS = counter("triton_circuit_openings")
HELD_BATCHES = f"{PREFIX}batches_held"            # batches waiting for their checkpoint scores
