"""Event produced -> recommendation update consumed, at fixed offered rates; its
stages by the records' timestamps; and its floor, the Kafka hops alone."""
from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.loaded_stack import PARTITIONS
from stream.contract import metrics as names
from stream.contract import topics
from stream.kafka.admin import ensure_topics
from stream.tools.launcher import Broker, WorkerProcess, records_taken, spawn, stopping, wait_until

LATENCY_RATES = (500, 2000, 5000)
LATENCY_SECONDS = 10.0
# The offering producer batches for up to 2 ms, as a shop service's producer would (Kafka's
# and librdkafka's default linger is 5 ms), and the wait counts in the latency (the clock
# starts before `send`). With 0 it sent a produce request per event: at 2,000 events/s that
# alone, producer -> consumer with no hop between, measured p50/p99 7.8/86.7 ms, and 4.9/17.6
# ms with 1 ms (development runs, docs/DESIGN.md section 8).
OFFER_LINGER_MS = 2


def latency_events(lines: list[bytes], rate: int, count: int, start_ms: int) -> list[tuple[bytes, str, bytes]]:
    """`count` valid events of the log as new members (prefixed ids): (key, event_id, value).
    Event time continues after the log's end at the offered pace, as live traffic would
    (older times would set off every new member's inactivity checkpoints at once)."""
    from stream.domain.parsing import Rejected, parse_event

    out = []
    for line in lines:
        if len(out) == count:
            break
        if isinstance(parse_event(line, None, 1 << 20), Rejected):
            continue
        e = orjson.loads(line)
        e["member_id"] = f"lat{rate}-{e['member_id']}"
        e["event_id"] = f"lat{rate}-{e['event_id']}"
        e["ts"] = start_ms + len(out) * 1000 // rate
        out.append((e["member_id"].encode(), e["event_id"], orjson.dumps(e)))
    return out


def log_end_ms(lines: list[bytes]) -> int:
    from stream.domain.parsing import Rejected, parse_event

    return max(e.ts for e in (parse_event(line, None, 1 << 20) for line in lines)
               if not isinstance(e, Rejected))


async def _offer(bootstrap: str, events, rate: int, topic: str) -> dict[str, float]:
    """Produce at a fixed rate; the produce time of each event id (wall clock, as the
    record timestamps that `latency_stages` compares it with)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=OFFER_LINGER_MS, acks="all")
    await producer.start()
    sent: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        for i, (key, event_id, value) in enumerate(events):
            due = t0 + i / rate
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            sent[event_id] = time.time()
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def _collect(bootstrap: str, topic: str, id_field: str, arrivals: dict[str, float],
             ready: threading.Event, stop: threading.Event) -> None:
    """In its own thread and event loop: arrival time of each message of `topic` by the
    event id in its `id_field` (first arrival counts)."""
    async def main():
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="latest", fetch_max_wait_ms=5)
        await consumer.start()
        try:
            await consumer.seek_to_end()
            ready.set()
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=50)
                now = time.time()
                for msgs in batch.values():
                    for m in msgs:
                        arrivals.setdefault(orjson.loads(m.value)[id_field], now)
        finally:
            await consumer.stop()
    asyncio.run(main())


def _ms_percentiles(seconds: list[float]) -> dict:
    """p50, p95 and p99 of durations given in seconds, in ms."""
    ms = 1000 * np.array(seconds)
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99))}


def _percentiles(sent: dict[str, float], arrivals: dict[str, float], events: int) -> dict:
    lat = [arrivals[e] - t for e, t in sent.items() if e in arrivals]
    return {**_ms_percentiles(lat), "events": events, "updates_measured": len(lat)}


def _latencies(bootstrap: str, lines: list[bytes], into: str, collect: str, id_field: str,
               settler: Callable[[int, int], Callable[[dict, dict], None]],
               say: Callable[[str], None],
               stages: Optional[Callable[[dict, dict], dict]] = None) -> tuple[dict, dict]:
    """Per offered rate: produce the rate's events into `into` while a consumer of
    `collect` notes when each event id (in `id_field`) arrives; `settler(rate, n)`,
    called before producing, returns what waits until the arrivals are in. With
    `stages`, also `stages(sent, arrivals)` per rate, after the rate's run.
    (percentiles by rate, stages by rate)."""
    out, split = {}, {}
    start_ms = log_end_ms(lines) + 1000
    for rate in LATENCY_RATES:
        events = latency_events(lines, rate, int(rate * LATENCY_SECONDS), start_ms)
        start_ms += int(LATENCY_SECONDS * 1000) + 1000
        arrivals: dict[str, float] = {}
        ready, stop = threading.Event(), threading.Event()
        collector = threading.Thread(target=_collect, args=(bootstrap, collect, id_field, arrivals, ready, stop))
        collector.start()
        try:
            ready.wait(30)
            settle = settler(rate, len(events))
            sent = asyncio.run(_offer(bootstrap, events, rate, into))
            settle(sent, arrivals)
        finally:
            stop.set()
            collector.join(30)
        r = out[str(rate)] = _percentiles(sent, arrivals, len(events))
        say(f"  {rate} events/s: p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms over {r['updates_measured']} events")
        if stages is not None:
            split[str(rate)] = stages(sent, arrivals)
            say("    " + ", ".join(f"{k} p50 {v['p50']:.1f} ms" for k, v in split[str(rate)].items()))
    return out, split


def _record_times(bootstrap: str, topic: str, ids_of: Callable[[bytes], list[str]],
                  wanted: set[str], timeout: float = 60.0) -> dict[str, float]:
    """Read `topic` from the beginning until every id in `wanted` is seen: the record
    timestamp (seconds, wall clock: when the writer's producer took the record) of each
    id's first record; `ids_of(value)` gives a record's ids."""
    async def main() -> dict[str, float]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=20,
                                    max_partition_fetch_bytes=4 << 20)
        await consumer.start()
        found: dict[str, float] = {}
        try:
            deadline = time.monotonic() + timeout
            while not wanted <= found.keys():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{topic}: {len(wanted - found.keys())} of {len(wanted)} ids "
                                       f"not found after {timeout:.0f} s")
                for msgs in (await consumer.getmany(timeout_ms=500, max_records=10000)).values():
                    for m in msgs:
                        for event_id in ids_of(m.value):
                            if event_id in wanted:
                                found.setdefault(event_id, m.timestamp / 1000)
        finally:
            await consumer.stop()
        return found
    return asyncio.run(main())


def latency_stages(bootstrap: str, frames_topic: str, sent: dict[str, float],
                   arrivals: dict[str, float]) -> dict:
    """Where the pipeline's latency goes, by the record timestamps along the way, for the
    events whose recommendation update arrived (ms percentiles):
      offer_to_frame      produced -> the batcher sends the frame holding it (hop 1, framing)
      frame_to_output     -> the worker sends the update (hop 2, the agent, scoring)
      output_to_arrival   -> the update reaches the consumer (hop 3)
    Record timestamps have millisecond resolution."""
    from stream.kafka import framing

    measured = set(sent) & set(arrivals)

    def framed_ids(value: bytes) -> list[str]:
        return [orjson.loads(v)["event_id"] for _, _, v in framing.unpack(value)[1]]

    framed = _record_times(bootstrap, frames_topic, framed_ids, measured)
    output = _record_times(bootstrap, topics.RECOMMENDATIONS, lambda v: [orjson.loads(v)["based_on"]],
                           measured)
    return {"offer_to_frame": _ms_percentiles([framed[e] - sent[e] for e in measured]),
            "frame_to_output": _ms_percentiles([output[e] - framed[e] for e in measured]),
            "output_to_arrival": _ms_percentiles([arrivals[e] - output[e] for e in measured])}


def latency_floor_ms(broker: Broker, lines: list[bytes], fetch_max_wait_ms: int, work: Path,
                     say: Callable[[str], None]) -> dict:
    """The Kafka part of the pipeline's path alone, at the same offered rates and with
    the same events: producer -> relay -> relay -> consumer, where the two relays
    (bench/relay.py, a process each) are raw aiokafka hops with the worker's fetch wait,
    as the batcher's hop and the agent's. No Faust, no state, no model: what the
    broker and its client cost the latency."""
    names = [f"bench.floor.{i}" for i in range(3)]
    asyncio.run(ensure_topics(broker.bootstrap, PARTITIONS, names=tuple(names)))
    relays = [spawn(f"relay-{i}", [sys.executable, "-m", "bench.relay", broker.bootstrap, names[i],
                                   names[i + 1], str(fetch_max_wait_ms)], work) for i in range(2)]

    def settler(rate: int, n: int) -> Callable[[dict, dict], None]:
        return lambda sent, arrivals: wait_until(lambda: len(arrivals) >= len(sent), 60,
                                                 f"floor relays at {rate} events/s")

    with stopping(*relays):
        for relay in relays:
            wait_until(lambda: b"ready" in relay.log_path.read_bytes(), 60, relay.name, relay)
        return _latencies(broker.bootstrap, lines, names[0], names[2], "event_id", settler, say)[0]


def triton_times(triton) -> dict[str, float]:
    """Triton's own statistics of the served model (its statistics extension): requests
    answered and nanoseconds summed, by phase."""
    import json
    import urllib.request

    with urllib.request.urlopen(f"{triton.http_url}/v2/models/{triton.model}/stats", timeout=10) as r:
        stats = json.loads(r.read())["model_stats"][0]["inference_stats"]
    return {"requests": float(stats["success"]["count"]), "request_ns": float(stats["success"]["ns"]),
            **{f"{phase}_ns": float(stats[phase]["ns"])
               for phase in ("queue", "compute_input", "compute_infer", "compute_output")}}


def triton_split(before: dict[str, float], after: dict[str, float]) -> dict:
    """Per request over one rate's run, Triton's side (means, ms): in the server from
    arrival to answer (`server_ms`), of which queued for the model instance and in the
    model (inputs, the forward pass, outputs)."""
    n = after["requests"] - before["requests"]

    def ms(key: str) -> float:
        return round((after[key] - before[key]) / n / 1e6, 2) if n else 0.0

    return {"server_ms": ms("request_ns"), "queue_ms": ms("queue_ns"),
            "model_ms": round(sum(ms(f"{p}_ns") for p in ("compute_input", "compute_infer", "compute_output")), 2)}


def _processes(broker: Broker, worker: WorkerProcess, triton) -> dict[str, list[int]]:
    """The processes on the latency's path, by name (the bench's own: offering producer
    and collector)."""
    from bench.profile_pipeline import batcher_of, children

    out = {"worker": [worker.process.pid], "batcher": batcher_of(worker.process.pid),
           "broker": [broker.process.pid], "bench": [os.getpid()]}
    if triton is not None:
        out["triton"] = [triton.process.pid, *children(triton.process.pid)]
    return out


def _cpu(processes: dict[str, list[int]]) -> dict:
    from bench.profile_pipeline import cpu_seconds, machine_cpu

    return {"at": time.monotonic(), "idle": machine_cpu(),
            "cpu": {name: sum(cpu_seconds(pid) or 0.0 for pid in pids) for name, pids in processes.items()}}


def cores_busy(before: dict, after: dict) -> dict[str, float]:
    """Cores each process kept busy between two `_cpu` readings, and the machine's idle ones."""
    from bench.profile_pipeline import idle_cores

    wall = after["at"] - before["at"]
    out = {f"{name}_cores": round((after["cpu"][name] - before["cpu"][name]) / wall, 2) for name in before["cpu"]}
    out["idle_cores"] = round(idle_cores(before["idle"], after["idle"], os.cpu_count() or 1), 2)
    return out


def worker_split(before: dict[str, float], after: dict[str, float]) -> dict:
    """Inside the worker over one rate's run, from its /metrics before and after (means):
      batches             agent batches taken, and input records per batch
      agent_input_ms      per batch: the agent waiting for its next input from Faust
      agent_lock_ms       per batch: waiting for the applying lock (a commit or a fill)
      agent_in_flight_ms  per batch: waiting for a free slot among the batches in flight
      pending_ms          per member scored: pending before a request took it
      request_ms          per request: the Triton request (rows built, sent, answered)
      lists_ms            per request: the answered members' lists and outputs built
      rows_per_request    rows per Triton request
      gc_pauses, gc_ms    the garbage collector's pauses over the run: how many, and
                          their milliseconds summed (gc_full: of them, full collections)
    (`latency_stages` gives percentiles between the stages the records' timestamps mark;
    these say where the time inside the worker goes.)"""
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    def mean_ms(summary: str, per: float) -> float:
        return round(1000 * delta(f"{summary}_sum") / per, 2) if per else 0.0

    batches = delta(f"{names.INPUT_BATCH_RECORDS}_count")
    requests = delta(f"{names.TRITON_REQUEST_ROWS}_count")
    out = {"batches": int(batches),
           "records_per_batch": round(delta(f"{names.INPUT_BATCH_RECORDS}_sum") / batches, 1) if batches else 0.0}
    for reason in ("input", "lock", "in_flight"):
        out[f"agent_{reason}_ms"] = (round(1000 * delta(f'{names.AGENT_WAIT}_sum{{reason="{reason}"}}') / batches, 2)
                                     if batches else 0.0)
    for key, timing in (("pending_ms", "scoring_wait"), ("request_ms", "scoring_request"),
                        ("lists_ms", "scoring_lists")):
        summary = names.seconds(timing)
        out[key] = mean_ms(summary, delta(f"{summary}_count"))
    out["rows_per_request"] = round(delta(f"{names.TRITON_REQUEST_ROWS}_sum") / requests, 1) if requests else 0.0
    pauses = [f'{names.GC_PAUSE}_{{}}{{{{generation="{g}"}}}}' for g in range(3)]
    out["gc_pauses"] = int(sum(delta(p.format("count")) for p in pauses))
    out["gc_ms"] = round(1000 * sum(delta(p.format("sum")) for p in pauses), 1)
    out["gc_full"] = int(delta(pauses[2].format("count")))
    return out


def latency_ms(broker: Broker, worker: WorkerProcess, lines: list[bytes], say: Callable[[str], None],
               frames_topic: str, triton=None) -> tuple[dict, dict, dict]:
    """Event-to-recommendation-update latency at fixed offered rates, produce time to
    arrival at a consumer, over every event whose update arrived; its stages
    (`latency_stages`, the worker's frames in `frames_topic`); and where the time goes
    inside the worker (`worker_split`) and, given the `triton` it scores with, inside
    Triton (`triton_split`), by rate."""
    inside: dict[str, dict] = {}
    processes = _processes(broker, worker, triton)

    def settler(rate: int, n: int) -> Callable[[dict, dict], None]:
        before = worker.metrics()
        served = triton_times(triton) if triton is not None else None
        cpu = _cpu(processes)

        def settle(sent: dict, arrivals: dict) -> None:
            wait_until(lambda: worker.settled(records_taken(before) + n), 300,
                       f"worker to catch up after {rate} events/s", worker.process)
            busy = cores_busy(cpu, _cpu(processes))
            time.sleep(1.0)  # the last updates' way to the collector
            split = worker_split(before, worker.metrics())
            if served is not None:
                split.update(triton_split(served, triton_times(triton)))
            split.update(busy)
            inside[str(rate)] = split
            say("    inside: " + ", ".join(f"{k} {v}" for k, v in split.items()))
        return settle

    out, stages = _latencies(broker.bootstrap, lines, topics.SHOP_EVENTS, topics.RECOMMENDATIONS, "based_on",
                             settler, say, lambda sent, arrivals: latency_stages(broker.bootstrap, frames_topic,
                                                                                 sent, arrivals))
    return out, stages, inside
