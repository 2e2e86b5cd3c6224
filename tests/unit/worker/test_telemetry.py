"""The worker's /metrics (stream/worker/telemetry.py) on a Worker of in-memory fakes,
read back with prometheus_client's own parser: conventional names, the labelled
counts, histograms, lags, and no member id anywhere."""
import asyncio
import time

from prometheus_client.parser import text_string_to_metric_families

from stream.contract import topics
from stream.worker.health import Health
from stream.worker.telemetry import WorkerCollector, watch_gc, watch_loop_lag
from tests.fixtures.events import T0, event, messages
from tests.fixtures.fakes import FlakyScorer
from tests.fixtures.workers import fake_worker, run


def scrape(worker, status="ok", highwater=lambda p: None, now=None):
    collector = WorkerCollector(worker, lambda: Health(status, 200), highwater,
                                clock=(lambda: now) if now is not None else __import__("time").time)
    worker.telemetry.registry.register(collector)
    try:
        text = worker.telemetry.text().decode()
    finally:
        worker.telemetry.registry.unregister(collector)
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return text, samples


def test_counts_by_type_outcome_and_reason_histograms_and_lags():
    worker = fake_worker(frames=False, scorer=FlakyScorer([ConnectionError("refused")]), scoring_retry_base_s=0.01)
    values = [event("member-a", 0, ts=T0), event("member-a", 0, ts=T0),  # the second a duplicate
              event("member-b", 1, ts=T0 + 1000, kind="view"), b"{not json", event("member-c", 2, ts=T0 + 2000)]

    async def go():
        await worker.take(messages(0, 0, values))
        await worker.decisions.drained()
        await worker.publish(await worker.processor.score_pending(100))  # fails: ConnectionError
        await worker.processor.breaker.until_retry()
        await worker.publish(await worker.processor.score_pending(100))
        await worker.commit.commit()  # the table holds the members once committed

    run(go())
    text, m = scrape(worker, status="degraded", highwater=lambda p: 9, now=T0 / 1000 + 60)
    assert m[("memberstream_events_total", ())] == 3
    assert m[("memberstream_input_events_total", (("outcome", "applied"), ("type", "purchase")))] == 2
    assert m[("memberstream_input_events_total", (("outcome", "applied"), ("type", "view")))] == 1
    assert m[("memberstream_input_events_total", (("outcome", "duplicate"), ("type", "purchase")))] == 1
    assert m[("memberstream_input_events_total", (("outcome", "dead_lettered"), ("type", "unknown")))] == 1
    assert m[("memberstream_dead_letters_total", (("reason", "NOT_JSON"),))] == 1
    # One batch of 5 records; two Triton requests of 3 rows, the first failed.
    assert m[("memberstream_input_batch_records_count", ())] == 1
    assert m[("memberstream_input_batch_records_sum", ())] == 5
    assert m[("memberstream_triton_request_rows_sum", ())] == 6  # member-a, -b, -c twice
    assert m[("memberstream_triton_requests_total", ())] == 1  # answered
    assert m[("memberstream_triton_request_duration_seconds_count", (("outcome", "error"),))] == 1
    assert m[("memberstream_triton_request_duration_seconds_count", (("outcome", "ok"),))] == 1
    assert m[("memberstream_triton_request_errors_total", (("kind", "ConnectionError"),))] == 1
    # Outputs by topic: the dead letter, and the recommendation updates (fallback, then model).
    assert m[("memberstream_outputs_total", (("topic", topics.DEAD_LETTER),))] == 1
    assert m[("memberstream_outputs_total", (("topic", topics.RECOMMENDATIONS),))] == \
        m[("memberstream_recommendation_updates_total", ())] >= 3
    assert m[("memberstream_triton_request_rows_count", ())] == 2
    # Lags: the watermark is the newest event (T0 + 2 s); 9 is the high watermark, 5 the next offset.
    assert m[("memberstream_event_time_lag_seconds", (("partition", "0"),))] == 58.0
    assert m[("memberstream_consumer_lag_records", (("partition", "0"), ("topic", topics.SHOP_EVENTS)))] == 4
    assert m[("memberstream_members", ())] == 3
    assert m[("memberstream_health", (("status", "degraded"),))] == 1
    assert m[("memberstream_health", (("status", "ok"),))] == 0
    assert m[("memberstream_triton_circuit", (("state", "closed"),))] == 1
    assert "member-" not in text  # no member id in a label, or anywhere
    for line in text.splitlines():
        if line.startswith("# TYPE") and line.endswith(" counter"):
            assert line.split()[2].startswith("memberstream_"), line


def test_an_unknown_high_watermark_is_left_out():
    worker = fake_worker(frames=False)
    run(worker.take(messages(0, 0, [event("m", 0, ts=T0)])))
    _, m = scrape(worker)
    assert not any(name == "memberstream_consumer_lag_records" for name, _ in m)
    assert m[("memberstream_health", (("status", "ok"),))] == 1


def test_the_batchers_lag_on_shop_events_beside_the_agents_on_the_frames():
    worker = fake_worker(frames=True)
    worker.batcher._lags[1] = 7  # as the batcher's process writes it
    worker.batcher._lags[3] = 0
    _, m = scrape(worker)
    lag = {labels: v for (name, labels), v in m.items() if name == "memberstream_consumer_lag_records"}
    assert lag == {(("partition", "1"), ("topic", topics.SHOP_EVENTS)): 7,
                   (("partition", "3"), ("topic", topics.SHOP_EVENTS)): 0}


def test_the_loop_lag_histogram_sees_work_that_holds_the_loop():
    """A 0.3 s piece of work in the loop (the fault: time.sleep holds it as a long
    eviction would) shows as a timer at least 0.25 s late."""
    worker = fake_worker(frames=False)
    value = worker.telemetry.registry.get_sample_value
    name = "memberstream_event_loop_lag_seconds"

    def late() -> float:
        return value(f"{name}_count") - value(f"{name}_bucket", {"le": "0.25"})

    async def until(condition, timeout_s=10.0):
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.005)

    async def go():
        task = asyncio.ensure_future(watch_loop_lag(worker.telemetry, interval_s=0.01))
        try:
            await until(lambda: value(f"{name}_count") >= 3)
            before = value(f"{name}_count"), late(), value(f"{name}_sum")
            time.sleep(0.3)
            await until(lambda: value(f"{name}_count") > before[0])
            return before
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    count, held, total = run(go())
    _, samples = scrape(worker)  # served on /metrics as observed
    assert samples[(f"{name}_count", ())] == value(f"{name}_count") > count
    assert late() >= held + 1
    assert samples[(f"{name}_sum", ())] - total >= 0.25


def test_the_gc_pause_histogram_sees_each_collection_by_generation_and_lets_go_at_cancel():
    """Two full collections with 200,000 live containers (the fault: a pause as the
    members' states make one) show as two generation-2 pauses, with their seconds;
    once the task is cancelled, its callback is gone."""
    import gc

    worker = fake_worker(frames=False)
    value = worker.telemetry.registry.get_sample_value
    name = "memberstream_gc_pause_seconds"
    full = {"generation": "2"}
    callbacks = len(gc.callbacks)

    async def go():
        task = asyncio.ensure_future(watch_gc(worker.telemetry, interval_s=0.01))
        gc.disable()  # only the two collections below
        try:
            await asyncio.sleep(0)  # the task's callback in place
            assert len(gc.callbacks) == callbacks + 1
            before = value(f"{name}_count", full) or 0.0
            live = [[i] for i in range(200_000)]
            t = time.perf_counter()
            gc.collect()
            gc.collect()
            held = time.perf_counter() - t
            deadline = time.monotonic() + 10
            while value(f"{name}_count", full) != before + 2:
                assert time.monotonic() < deadline, "timed out"
                await asyncio.sleep(0.005)
            del live
            return held
        finally:
            gc.enable()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    held = run(go())
    assert len(gc.callbacks) == callbacks
    _, samples = scrape(worker)
    paused = samples[(f"{name}_sum", (("generation", "2"),))]
    assert 0 < paused <= held
    assert samples[(f"{name}_count", (("generation", "2"),))] == 2
