"""The worker's HTTP interface: /health, /metrics, /members/{member_id}[?at=RFC 3339]."""
from __future__ import annotations

import faust

from stream.contract import metrics as names
from stream.contract.schemas import EVENT_TIMES
from stream.domain.event_time import rfc3339
from stream.domain.member_value import contract_value, inputs_of
from stream.processing.assess import assess
from stream.scoring.breaker import STATE_VALUES
from stream.worker.stall_watcher import StallWatcher
from stream.worker.worker import Worker


def register(app: faust.App, worker: Worker, members: faust.Table, watcher: StallWatcher) -> None:
    processor, batcher = worker.processor, worker.batcher

    @app.page("/health")
    async def health(web, request):
        """stream/worker/health.py: ok, degraded or starting, with the reasons."""
        assigned = sorted(watcher.owned()) if app.consumer else []
        ready = (bool(assigned) and app.tables.recovery.completed.is_set() and not app.rebalancing
                 and (not worker.settings.frames or batcher.joined.is_set()))
        state = worker.health(ready)
        return web.json({"status": state.status, "reasons": state.reasons,
                         "model_version": worker.scorer.model_version, "partitions": assigned},
                        status=state.code)

    @app.page("/metrics")
    async def metrics(web, request):
        return web.text(metrics_text(worker), content_type="text/plain; version=0.0.4")

    @app.page("/members/{member_id}")
    @app.table_route(table=members, match_info="member_id")
    async def member(web, request, member_id: str):
        state = processor.state(member_id)
        if state is None:
            return web.json({"error": f"unknown member {member_id}"}, status=404)
        # The value as of the partition's event time ("now" in the log), or `?at=`: then the
        # member is also scored at that time (churn at that silence, a fresh list).
        now = max(processor.schedule.watermarks.get(state.partition, state.last_ts), state.last_ts)
        assessed = None
        if "at" in request.query:
            try:
                now = EVENT_TIMES[request.query["at"]]
            except ValueError as exc:
                return web.json({"error": f"at: {exc}"}, status=400)
            assessed = await assess(processor, state, now)
            if assessed is None:
                return web.json({"error": f"scoring unavailable: {processor.breaker.reason}"}, status=503)
        return web.json({
            "member_id": state.member_id, "partition": state.partition,
            "events": state.n_events, "last_event_id": state.last_event_id,
            "last_event_time": rfc3339(state.last_ts), "purchase_visits": state.purchase_visits,
            "monetary": round(state.monetary, 2), "lifecycle_stage": state.stage, "tier": state.tier,
            "churn_probability": state.churn_probability, "open_alert": state.episode,
            "recommendations": [{"item_id": i, "score": s} for i, s in state.recommendations],
            "recommendations_fallback": state.recommendations_fallback,
            "scoring_pending": state.pending_score,
            "value": contract_value(processor.value_model, inputs_of(state), state.last_ts, now),
            "sequence": state.items,
            **({} if assessed is None else {"assessed": assessed}),
        })


def metrics_text(worker: Worker) -> str:
    """The worker's metrics in Prometheus' text format (names: stream/contract/metrics.py)."""
    processor, batcher = worker.processor, worker.batcher
    lines = []
    for name in names.PROCESSOR_COUNTS:
        metric = names.counter(name)
        lines += [f"# TYPE {metric} counter", f"{metric} {processor.totals.get(name, 0)}"]
    for metric, value in ((names.TRITON_REQUESTS, worker.scorer.requests),
                          (names.BATCHED_RECORDS, batcher.records), (names.FRAMES, batcher.frames)):
        lines += [f"# TYPE {metric} counter", f"{metric} {value}"]
    for name in names.PROCESSOR_TIMINGS:
        total, count = processor.timings[name]
        metric = names.seconds(name)
        lines += [f"# TYPE {metric} summary", f"{metric}_sum {total:.6f}", f"{metric}_count {count}"]
    lines.append(f"# TYPE {names.AGENT_WAIT} summary")
    for reason, (total, count) in worker.waits.by_reason.items():
        lines += [f'{names.AGENT_WAIT}_sum{{reason="{reason}"}} {total:.6f}',
                  f'{names.AGENT_WAIT}_count{{reason="{reason}"}} {count}']
    for metric, value in ((names.SCORING_BACKLOG, worker.scoring_backlog()),
                          (names.CHANGELOG_BACKLOG, worker.backlog()), (names.MEMBERS, worker.members())):
        lines += [f"# TYPE {metric} gauge", f"{metric} {value}"]
    breaker = processor.breaker
    lines.append(f"# TYPE {names.TRITON_CIRCUIT} gauge")
    lines += [f'{names.TRITON_CIRCUIT}{{state="{state}"}} {int(breaker.state == state)}' for state in STATE_VALUES]
    lines += [f"# TYPE {names.TRITON_CIRCUIT_OPENINGS} counter", f"{names.TRITON_CIRCUIT_OPENINGS} {breaker.openings}",
              f"# TYPE {names.HELD_BATCHES} gauge", f"{names.HELD_BATCHES} {len(worker.decisions.held)}"]
    lines.append(f"# TYPE {names.WATERMARK} gauge")
    for partition, wm in sorted(processor.schedule.watermarks.items()):
        lines.append(f'{names.WATERMARK}{{partition="{partition}"}} {wm / 1000:.3f}')
    return "\n".join(lines) + "\n"
