"""The worker's HTTP interface: /health, /metrics, /members/{member_id}[?at=RFC 3339],
and the live dashboard: /dashboard, its data and its assets (stream/worker/dashboard.py)."""
from __future__ import annotations

import asyncio
import functools
import time
from typing import Callable, Optional

import aiohttp
import faust
from faust.types import TP
from yarl import URL

from stream.contract.schemas import EVENT_TIMES
from stream.domain.event_time import rfc3339
from stream.domain.member_value import contract_value, inputs_of
from stream.processing.assess import assess
from stream.worker.dashboard import Snapshot, asset
from stream.worker.stall_watcher import StallWatcher
from stream.worker.telemetry import CONTENT_TYPE, WorkerCollector
from stream.worker.worker import Worker


ROUTED = "X-Memberstream-Routed"
ANSWERED_BY = "X-Memberstream-Answered-By"
ASK_TIMEOUT = aiohttp.ClientTimeout(total=5)


def ask_the_others(app: faust.App, table: faust.Table, where: Callable[[str], Optional[int]],
                   owned: Callable[[], set[int]]):
    """A view decorator for keys whose partition no worker can compute (pseudonyms):
    the view answers if this worker owns the member's partition (or the request was
    routed here already). Otherwise the owner of the partition that a standby copy
    here names is asked first, then every other worker, each for at most 5 s."""
    def decorator(view):
        @functools.wraps(view)
        async def get(self, request, member_id: str):
            partition = where(member_id)
            if (partition is not None and partition in owned()) or request.headers.get(ROUTED):
                return await view(self, request, member_id)
            own = app.router._urlident(app.conf.canonical_url)
            hosts = app.router.table_metadata(table.name)
            changelog = table.changelog_topic.get_topic_name()
            order = sorted((h for h in hosts if app.router._urlident(URL(h)) != own),
                           key=lambda h: partition not in hosts[h].get(changelog, ()))
            headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
            for host in order:
                url = URL(host)
                try:
                    async with app.http_client.get(request.url.with_host(url.host).with_port(url.port),
                                                   headers={**headers, ROUTED: "1"}, timeout=ASK_TIMEOUT) as answer:
                        if answer.status != 404:
                            return self.text(await answer.text(), content_type=answer.content_type,
                                             status=answer.status, headers={ANSWERED_BY: host})
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    continue  # that worker is away: it may come back; the others may hold it
            return await view(self, request, member_id)
        return get
    return decorator


def register(app: faust.App, worker: Worker, members: faust.Table, watcher: StallWatcher) -> None:
    processor, batcher = worker.processor, worker.batcher

    def assigned() -> list[int]:
        return sorted(watcher.owned()) if app.consumer else []

    def ready() -> bool:
        return (bool(assigned()) and app.tables.recovery.completed.is_set() and not app.rebalancing
                and (not worker.settings.frames or batcher.joined.is_set()))

    def current_health():
        return worker.health(ready())

    def starting():
        """None when ready; else what moves while the worker starts, in words (the watchdog
        compares them, stream/worker/watchdog.py): rebalances, changelog records left to
        recover, the batcher's group, the partitions."""
        if ready():
            return None
        recovery, frames = app.tables.recovery, worker.settings.frames
        return ", ".join([
            f"rebalance #{app.rebalancing_count} {'under way' if app.rebalancing else 'done'}",
            f"{recovery.active_remaining_total()} changelog records left to recover" if recovery.in_recovery
            else f"recovery {'complete' if recovery.completed.is_set() else 'not started'}",
            f"batcher {'in' if batcher.joined.is_set() else 'not in'} its group" if frames else "no batcher",
            f"partitions {assigned()}"])

    worker.watchdog.starting = starting

    def highwater(partition: int):
        if not app.consumer:
            return None
        try:
            return app.consumer.highwater(TP(worker.input_topic, partition))
        except Exception:  # noqa: BLE001 (not assigned any more, or no fetch yet: unknown)
            return None

    worker.telemetry.registry.register(WorkerCollector(worker, current_health, highwater))

    @app.page("/health")
    async def health(web, request):
        """stream/worker/health.py: ok, degraded or starting, with the reasons."""
        state = current_health()
        return web.json({"status": state.status, "reasons": state.reasons,
                         "model_version": worker.scorer.model_version, "partitions": assigned()},
                        status=state.code)

    @app.page("/metrics")
    async def metrics(web, request):
        """Prometheus' text format (stream/worker/telemetry.py)."""
        return web.text(worker.telemetry.text().decode(), content_type=CONTENT_TYPE)

    # Raw ids are routed to the owner of their partition. A pseudonym's partition is the
    # raw id's, which no worker can compute: the workers that do not hold the member ask
    # the others.
    route = (app.table_route(table=members, match_info="member_id") if processor.privacy is None
             else ask_the_others(app, members, lambda m: getattr(processor.peek(m), "partition", None), assigned))

    @app.page("/members/{member_id}")
    @route
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
        reasons = worker.feed.reasons(state.member_id)
        at = state.known_churn_at()
        return web.json({
            "member_id": state.member_id, "partition": state.partition,
            "events": state.n_events, "last_event_id": state.last_event_id,
            "last_event_time": rfc3339(state.last_ts), "purchase_visits": state.purchase_visits,
            "monetary": round(state.monetary, 2), "lifecycle_stage": state.stage, "tier": state.tier,
            "churn_probability": state.churn_probability, "open_alert": state.episode,
            # The model's churn for this sequence at each inactivity checkpoint's silence.
            "churn_at_checkpoints": [] if at is None else [
                {"days": d, "churn": round(c, 4)} for d, c in zip(processor.schedule.days, at)],
            "recommendations": [{"item_id": i, "score": s, "reason": reasons.get(i)}
                                for i, s in state.recommendations],
            "recommendations_fallback": state.recommendations_fallback,
            "scoring_pending": state.pending_score,
            "value": contract_value(processor.value_model, inputs_of(state), state.last_ts, now),
            "sequence": state.items,
            **({} if assessed is None else {"assessed": assessed}),
        })

    snapshot = Snapshot(lambda: list(processor.cache.values()))

    @app.page("/dashboard")
    async def dashboard(web, request):
        text, kind = asset("index.html")
        return web.html(text)

    @app.page("/dashboard/assets/{name}")
    async def dashboard_asset(web, request, name: str):
        try:
            text, kind = asset(name)
        except KeyError:
            return web.json({"error": f"no asset {name}"}, status=404)
        return web.text(text, content_type=kind)

    @app.page("/dashboard/data")
    async def dashboard_data(web, request):
        """This worker's figures for the page: cumulative counts (the page derives rates),
        the newest alerts and anomalies, and its members' stages, tiers and churn."""
        totals = processor.totals
        state = current_health()
        return web.json({
            "time": time.time(), "health": {"status": state.status, "reasons": state.reasons},
            "model_version": worker.scorer.model_version, "members": worker.members(),
            "totals": {**{k: totals.get(k, 0) for k in ("events", "dead_lettered", "duplicates", "alerts",
                                                          "recommendation_updates", "segment_changes",
                                                          "anomalies")},
                       "outputs": worker.feed.outputs},
            "alerts": list(worker.feed.alerts)[:20], "anomalies": list(worker.feed.anomalies)[:10],
            "population": snapshot.get()})
