"""The worker's HTTP interface: /health, /metrics, /members/{member_id}."""
from __future__ import annotations

from . import tansu_quirks
from .app import app, settings
from .event_time import rfc3339
from .ingest_agent import agent_waits, batcher, owned_partitions, processor, publisher, scorer
from .input_cursor import input_key
from .members_table import members

COUNTERS = ("events", "dead_lettered", "duplicates", "alerts", "recommendation_updates",
            "segment_changes", "anomalies", "scoring_failures", "scored_rows", "redelivered",
            "gap_filled", "checkpoint_rows", "checkpoints_known", "checkpoint_updates")


@app.page("/health")
async def health(web, request):
    """200 once the worker owns partitions, has recovered its table and (with frames)
    its batcher has joined its group, else 503."""
    assigned = sorted(owned_partitions()) if app.consumer else []
    ready = (bool(assigned) and app.tables.recovery.completed.is_set() and not app.rebalancing
             and (not settings.frames or batcher.joined.is_set()))
    return web.json({"status": "ok" if ready else "starting", "model_version": scorer.model_version,
                     "partitions": assigned}, status=200 if ready else 503)


def _members() -> int:
    """Members in this worker's table: its keys less the per-partition bookkeeping."""
    bookkeeping = (k for p in range(settings.partitions)
                   for k in (input_key(p), tansu_quirks.end_marker(p, 0)[0]))
    return len(members.data) - sum(k in members.data for k in bookkeeping)


@app.page("/metrics")
async def metrics(web, request):
    lines = []
    for name in COUNTERS:
        metric = f"memberstream_{name}_total"
        lines += [f"# TYPE {metric} counter", f"{metric} {processor.totals.get(name, 0)}"]
    lines += ["# TYPE memberstream_triton_requests_total counter",
              f"memberstream_triton_requests_total {scorer.requests}",
              "# TYPE memberstream_batched_records_total counter",
              f"memberstream_batched_records_total {batcher.records}",
              "# TYPE memberstream_frames_total counter", f"memberstream_frames_total {batcher.frames}",
              *(line for name, (total, count) in processor.timings.items() for line in (
                  f"# TYPE memberstream_{name}_seconds summary",
                  f"memberstream_{name}_seconds_sum {total:.6f}",
                  f"memberstream_{name}_seconds_count {count}")),
              "# TYPE memberstream_agent_wait_seconds summary",
              *(line for reason, (total, count) in agent_waits.items() for line in (
                  f'memberstream_agent_wait_seconds_sum{{reason="{reason}"}} {total:.6f}',
                  f'memberstream_agent_wait_seconds_count{{reason="{reason}"}} {count}')),
              "# TYPE memberstream_scoring_backlog gauge",
              f"memberstream_scoring_backlog {len(processor.pending)}",
              "# TYPE memberstream_changelog_backlog gauge",
              f"memberstream_changelog_backlog {publisher.backlog()}",
              "# TYPE memberstream_members gauge", f"memberstream_members {_members()}",
              "# TYPE memberstream_watermark_seconds gauge"]
    for partition, wm in sorted(processor.schedule.watermarks.items()):
        lines.append(f'memberstream_watermark_seconds{{partition="{partition}"}} {wm / 1000:.3f}')
    return web.text("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")


@app.page("/members/{member_id}")
@app.table_route(table=members, match_info="member_id")
async def member(web, request, member_id: str):
    state = processor.state(member_id)
    if state is None:
        return web.json({"error": f"unknown member {member_id}"}, status=404)
    return web.json({
        "member_id": state.member_id, "partition": state.partition,
        "events": state.n_events, "last_event_id": state.last_event_id,
        "last_event_time": rfc3339(state.last_ts), "purchase_visits": state.purchase_visits,
        "monetary": round(state.monetary, 2), "lifecycle_stage": state.stage, "tier": state.tier,
        "churn_probability": state.churn_probability, "open_alert": state.episode,
        "recommendations": [{"item_id": i, "score": s} for i, s in state.recommendations],
        "recommendations_fallback": state.recommendations_fallback,
        "sequence": state.items,
    })
