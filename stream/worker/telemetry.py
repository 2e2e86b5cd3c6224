"""The worker's `/metrics`, built with prometheus_client.

One registry per worker (a test may build several in one process). Two kinds
of metric live in it:

* observed as they happen: the histograms of input batch sizes, of rows per
  Triton request and of Triton request latency (labelled by outcome), Triton
  errors by kind, outputs by topic, and how late the event loop ran a timer
  (`Telemetry`, `watch_loop_lag`: work that holds the loop, such as an item
  statistics' eviction, holds every input, scoring answer and output);
* read at scrape time from what the worker keeps anyway (`WorkerCollector`):
  the processing core's counts (plain, by event type and outcome, dead
  letters by reason), durations, backlogs, members, the circuit and health
  state, each partition's watermark, its event-time lag (wall clock minus
  watermark), the agent's consumer lag (the input's high watermark minus
  the agent's input cursor) and the batcher's on shop.events (its child
  process shares them, stream/kafka/batcher.py).

Names: stream/contract/metrics.py; base units, `_total` counters, and no
member ids in any label.
"""
from __future__ import annotations

import asyncio
import gc
import time
from typing import Callable, Optional

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from stream.contract import metrics as names
from stream.processing.outputs import DEAD_LETTERS, INPUT
from stream.scoring.breaker import STATE_VALUES

disable_created_metrics()  # `_created` series double every counter's lines; nothing here reads them

HEALTH_STATES = ("ok", "degraded", "starting")
LOOP_LAG_INTERVAL_S = 0.1  # the timer watch_loop_lag sets, again and again
CONTENT_TYPE = "text/plain; version=0.0.4"  # aiohttp adds the charset


def _bare(name: str) -> str:
    """A counter's family name: prometheus_client appends `_total` itself."""
    return name.removesuffix("_total")


class Telemetry:
    """What the worker observes as it happens (the processor reports Triton requests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)  # never collect at registration
        self.requests = 0  # Triton requests answered (failed ones: request_errors)
        r = self.registry
        self.input_batch = Histogram(
            names.INPUT_BATCH_RECORDS, "Input records per processed batch (frames unpacked)", registry=r,
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000))
        self.request_rows = Histogram(
            names.TRITON_REQUEST_ROWS, "Model rows per Triton request", registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
        self.request_seconds = Histogram(
            names.TRITON_REQUEST_SECONDS, "Triton request latency, by outcome (ok, error)", ["outcome"],
            registry=r, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.request_errors = Counter(
            _bare(names.TRITON_REQUEST_ERRORS), "Failed Triton requests, by the error's kind", ["kind"],
            registry=r)
        self.outputs = Counter(
            _bare(names.OUTPUTS), "Output messages handed to the producer, by topic", ["topic"], registry=r)
        self.loop_lag = Histogram(
            names.EVENT_LOOP_LAG, f"Seconds the event loop ran a {LOOP_LAG_INTERVAL_S:g} s timer late (work "
            "holding the loop)", registry=r, buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.gc_pause = Histogram(
            names.GC_PAUSE, "Seconds each garbage collection held the process, by generation", ["generation"],
            registry=r, buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    # The processor's hook (stream/processing/processor.py NoTelemetry).
    def scoring_request(self, rows: int, seconds: float, error: Optional[str]) -> None:
        self.requests += error is None
        self.request_rows.observe(rows)
        self.request_seconds.labels("ok" if error is None else "error").observe(seconds)
        if error is not None:
            self.request_errors.labels(error).inc()

    def batch(self, records: int) -> None:
        self.input_batch.observe(records)

    def published(self, outputs) -> None:
        counts: dict[str, int] = {}
        for o in outputs:
            counts[o.topic] = counts.get(o.topic, 0) + 1
        for topic, n in counts.items():
            self.outputs.labels(topic).inc(n)

    def text(self) -> bytes:
        return generate_latest(self.registry)


async def watch_loop_lag(telemetry: Telemetry, interval_s: float = LOOP_LAG_INTERVAL_S,
                         clock: Callable[[], float] = time.monotonic) -> None:
    """Forever: sleep `interval_s` and observe how much later than that the loop woke."""
    while True:
        start = clock()
        await asyncio.sleep(interval_s)
        telemetry.loop_lag.observe(max(0.0, clock() - start - interval_s))


async def watch_gc(telemetry: Telemetry, interval_s: float = LOOP_LAG_INTERVAL_S,
                   clock: Callable[[], float] = time.perf_counter) -> None:
    """Until cancelled: every garbage collection's pause in the process (a collection
    stops every thread, whichever set it off), observed every `interval_s`. The
    collector's callback only notes the pause: a histogram's lock taken inside a
    collection could be the one its own thread already holds."""
    pauses = [telemetry.gc_pause.labels(str(g)) for g in range(3)]
    began, noted = [0.0], []

    def timed(phase: str, info: dict) -> None:
        if phase == "start":
            began[0] = clock()
        else:
            noted.append((info["generation"], clock() - began[0]))

    gc.callbacks.append(timed)
    try:
        while True:
            await asyncio.sleep(interval_s)
            while noted:
                generation, seconds = noted.pop(0)
                pauses[generation].observe(seconds)
    finally:
        gc.callbacks.remove(timed)


class WorkerCollector:
    """The worker's own figures, read at every scrape.

    `health`: () -> the current Health (stream/worker/health.py); `highwater`:
    partition -> the input topic's high watermark there as the agent's consumer
    last saw it (None: not known yet)."""

    def __init__(self, worker, health: Callable[[], object],
                 highwater: Callable[[int], Optional[int]], clock: Callable[[], float] = time.time) -> None:
        self.worker, self.health, self.highwater, self.clock = worker, health, highwater, clock

    def collect(self):
        w = self.worker
        p = w.processor
        totals = p.totals
        for name in names.PROCESSOR_COUNTS:
            yield CounterMetricFamily(_bare(names.counter(name)), names.COUNT_HELP.get(name, name.replace("_", " ")),
                                      value=totals.get(name, 0))
        events = CounterMetricFamily(_bare(names.INPUT_EVENTS), "Input records, by event type and outcome "
                                     "(applied, duplicate, dead_lettered)", labels=["type", "outcome"])
        letters = CounterMetricFamily(_bare(names.DEAD_LETTERS), "Dead letters, by reason code",
                                      labels=["reason"])
        for key, n in sorted((k, v) for k, v in totals.items() if isinstance(k, tuple)):
            if key[0] == INPUT:
                events.add_metric(list(key[1:]), n)
            elif key[0] == DEAD_LETTERS:
                letters.add_metric([key[1]], n)
        yield events
        yield letters
        for metric, value, doc in ((names.TRITON_REQUESTS, w.telemetry.requests, "Triton requests answered"),
                                   (names.BATCHED_RECORDS, w.batcher.records, "shop.events records the batcher framed"),
                                   (names.FRAMES, w.batcher.frames, "Frames the batcher wrote")):
            yield CounterMetricFamily(_bare(metric), doc, value=value)
        for name in names.PROCESSOR_TIMINGS:
            total, count = p.timings[name]
            yield SummaryMetricFamily(names.seconds(name), f"Seconds of {name.replace('_', ' ')}",
                                      count_value=count, sum_value=total)
        waits = SummaryMetricFamily(names.AGENT_WAIT, "Seconds the agent waited, by reason", labels=["reason"])
        for reason, (total, count) in sorted(w.waits.by_reason.items()):
            waits.add_metric([reason], count, total)
        yield waits
        for metric, value, doc in ((names.SCORING_BACKLOG, w.scoring_backlog(), "Members awaiting scoring"),
                                   (names.CHANGELOG_BACKLOG, w.backlog(), "States, offsets and outputs not yet committed"),
                                   (names.MEMBERS, w.members(), "Members in this worker's table"),
                                   (names.HELD_BATCHES, len(w.decisions.held), "Batches waiting for their checkpoint scores")):
            yield GaugeMetricFamily(metric, doc, value=value)
        circuit = GaugeMetricFamily(names.TRITON_CIRCUIT, "1 for the scoring circuit's state", labels=["state"])
        for state in STATE_VALUES:
            circuit.add_metric([state], int(p.breaker.state == state))
        yield circuit
        yield CounterMetricFamily(_bare(names.TRITON_CIRCUIT_OPENINGS), "Times the scoring circuit opened",
                                  value=p.breaker.openings)
        status = self.health().status
        health = GaugeMetricFamily(names.HEALTH, "1 for what /health answers", labels=["status"])
        for state in HEALTH_STATES:
            health.add_metric([state], int(status == state))
        yield health
        now = self.clock()
        watermark = GaugeMetricFamily(names.WATERMARK, "Event-time watermark, epoch seconds", labels=["partition"])
        lag = GaugeMetricFamily(names.EVENT_TIME_LAG, "Wall clock minus the watermark, seconds",
                                labels=["partition"])
        for partition, wm in sorted(p.schedule.watermarks.items()):
            watermark.add_metric([str(partition)], wm / 1000.0)
            lag.add_metric([str(partition)], now - wm / 1000.0)
        yield watermark
        yield lag
        consumer = GaugeMetricFamily(names.CONSUMER_LAG, "Input records not yet applied: the high watermark "
                                     "minus the agent's next offset", labels=["topic", "partition"])
        for partition, offset in sorted(w.cursor.next.items()):
            high = self.highwater(partition)
            if high is not None:
                consumer.add_metric([w.input_topic, str(partition)], max(0, high - offset))
        if w.input_topic != w.batcher.source:  # the batcher's own lag on shop.events
            for partition, behind in sorted(w.batcher.lags().items()):
                consumer.add_metric([w.batcher.source, str(partition)], behind)
        yield consumer
