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
                    "processing_failures", "late_events", "explanations_unavailable", "members_evicted")
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
PROCESSOR_TIMINGS = ("scoring_wait", "scoring_request", "scoring_lists", "checkpoint_scoring")
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
HEALTH = f"{PREFIX}health"                        # label status (ok, degraded, starting): 1 for /health's

# Labelled counters (stream/worker/telemetry.py).
INPUT_EVENTS = counter("input_events")    # labels type (event type, "unknown"), outcome (applied, duplicate, dead_lettered)
DEAD_LETTERS = counter("dead_letters")    # label reason: the dead letter's code (docs/DESIGN.md section 4)
OUTPUTS = counter("outputs")              # label topic: output messages handed to the producer
TRITON_REQUEST_ERRORS = counter("triton_request_errors")  # label kind: the exception's class

# Histograms (`_bucket`, `_sum` and `_count` follow).
INPUT_BATCH_RECORDS = f"{PREFIX}input_batch_records"          # input records per agent batch
TRITON_REQUEST_ROWS = f"{PREFIX}triton_request_rows"          # model rows per Triton request
TRITON_REQUEST_SECONDS = f"{PREFIX}triton_request_duration_seconds"  # label outcome: ok, error
EVENT_LOOP_LAG = f"{PREFIX}event_loop_lag_seconds"  # how late the worker's event loop ran a timer
GC_PAUSE = f"{PREFIX}gc_pause_seconds"  # label generation: the garbage collector's pauses

# Lag gauges.
EVENT_TIME_LAG = f"{PREFIX}event_time_lag_seconds"  # label partition: wall clock minus its watermark
CONSUMER_LAG = f"{PREFIX}consumer_lag_records"      # labels topic, partition: high watermark minus next offset

# Help lines of the processing core's counts.
COUNT_HELP = {
    "events": "Events applied to member states",
    "dead_lettered": "Input records sent to the dead-letter topic",
    "duplicates": "Input records dropped as duplicates",
    "alerts": "Churn alerts decided",
    "recommendation_updates": "Recommendation updates decided",
    "segment_changes": "Lifecycle or tier changes decided",
    "anomalies": "Anomalies decided",
    "scoring_failures": "Triton requests that failed or were refused by an open circuit",
    "scored_rows": "Model rows scored",
    "late_events": "Events older than their partition's watermark less the allowed lateness",
    "members_evicted": "Members dropped from the decoded cache past member_cache_max (kept in the store)",
}
