"""`memberstream bench` / `make bench`: the pipeline against its ceilings, in one run.

Every figure is measured in the same run on the embedded broker (Tansu) and
Triton that the launcher starts, because these machines are noisy: the
ratios are what count. Results go to bench/results.json (key names are
stable, so results stay comparable over time) and a table is printed.

  ceiling_eps              raw aiokafka: consume, parse, produce one output per input
  faust_trivial_eps        a trivial Faust agent forwarding the same messages (Faust defaults)
  faust_trivial_tuned_eps  the same agent with memberstream's poll and buffer settings, a 5 ms producer linger
  pipeline_eps             the full memberstream worker over the whole bench log (default: frames)
  pipeline_direct_eps      the same with MEMBERSTREAM_FRAMES=false (one Faust message per event)
  processor_alone_eps      the per-event work alone, in this process: no Kafka, no Faust, no
                           model (constant scores): the ceiling of memberstream's own code
  latency_ms               event produced -> recommendation update consumed, at 500/2000/5000 ev/s
                           (the offering producer lingers up to 2 ms; that wait counts)
  latency_stages_ms        the same events' latency split at the frame and the output record
  latency_floor_ms         the same events through two raw aiokafka relays: the Kafka hops alone
  triton                   rows/s and latency per batch size, served vs in-process
  state_bytes_per_member   serialised member state after 50 events
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream import topics
from stream.launcher import (Broker, Triton, Worker, free_port, records_taken, spawn, start_broker,
                             start_triton, start_worker, stopping, wait_until)
from stream.replay import replay
from stream.settings import Settings

HERE = Path(__file__).parent
BENCH_LOG = Path(".memberstream/logs/bench.jsonl")
BATCH_SIZES = (1, 16, 64, 256)
IN_TOPIC, OUT_TOPIC = "bench.in", "bench.out"
PARTITIONS = 4
LATENCY_RATES = (500, 2000, 5000)
LATENCY_SECONDS = 10.0
# The offering producer batches for up to 2 ms, as a shop service's producer would (Kafka's
# and librdkafka's default linger is 5 ms), and the wait counts in the latency (the clock
# starts before `send`). With 0 it sent a produce request per event: at 2,000 events/s that
# alone, producer -> consumer with no hop between, measured p50/p99 7.8/86.7 ms, and 4.9/17.6
# ms with 1 ms (development runs, docs/DESIGN.md section 8).
OFFER_LINGER_MS = 2
TRITON_POOL = 60_000  # distinct sequences for the Triton table


# ---------------------------------------------------------------- the log

def build_log(path: Path, data_dir: Path) -> int:
    """Real events, in event-time order per source: every Online Retail line of a
    known customer (cancellations included: they go to the DLQ) followed by
    every YooChoose-100k click (sessions as members)."""
    from models.datasets import contract_events, online_retail, yoochoose

    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "wb") as fh:
        retail = online_retail(data_dir, include_cancellations=True)
        clicks = [e for part in ("train_full", "test")
                  for ev in yoochoose(data_dir, part).values() for e in ev]
        for prefix, source in (("", retail), ("yc-", clicks)):
            for event in contract_events(source):
                event["member_id"] = prefix + event["member_id"]
                fh.write(orjson.dumps(event) + b"\n")
                n += 1
    return n


def read_lines(path: Path) -> list[bytes]:
    with open(path, "rb") as fh:
        return [line.rstrip(b"\n") for line in fh if line.strip()]


def bench_lines(settings: Settings, say: Callable[[str], None] = print) -> list[bytes]:
    """The bench log's lines, built from the data sets on first use."""
    if not BENCH_LOG.is_file():
        say(f"building {BENCH_LOG} from {settings.data_dir} ...")
        build_log(BENCH_LOG, settings.data_dir)
    return read_lines(BENCH_LOG)


def worker_env(broker: Broker, triton: Triton, **extra: str) -> dict[str, str]:
    """A bench worker's configuration: the embedded broker and this run's Triton."""
    env = {"MEMBERSTREAM_BROKER_URL": broker.url, "MEMBERSTREAM_TRITON_URL": triton.grpc_url,
           "MEMBERSTREAM_EMBEDDED_BROKER": "true", "MEMBERSTREAM_PARTITIONS": str(PARTITIONS)}
    env.update({f"MEMBERSTREAM_{k.upper()}": v for k, v in extra.items()})
    return env


@contextlib.contextmanager
def loaded_stack(settings: Settings, name: str) -> Iterator[tuple[list[bytes], Broker, Triton, Path]]:
    """A fresh broker holding the bench log in shop.events, and Triton, in
    .memberstream/<name>/; both stopped by PID however the block ends."""
    lines = bench_lines(settings)
    work = settings.state_dir / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    broker = start_broker(work / "broker")
    with stopping(broker.process):
        asyncio.run(replay(BENCH_LOG, broker.bootstrap, PARTITIONS, lines=lines))
        triton = start_triton(settings.triton_repo, settings.triton_model, work)
        with stopping(triton.process):
            yield lines, broker, triton, work


# ---------------------------------------------------------------- ceilings

async def ceiling_eps(bootstrap: str, n: int) -> float:
    """Raw aiokafka pass-through: getmany -> orjson.loads -> one send per input."""
    consumer = AIOKafkaConsumer(IN_TOPIC, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=20,
                                max_partition_fetch_bytes=4 << 20)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=262144)
    await consumer.start()
    await producer.start()
    try:
        got, t0 = 0, None
        while got < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if t0 is None and batch:
                t0 = time.monotonic()
            for msgs in batch.values():
                for m in msgs:
                    try:
                        orjson.loads(m.value)
                    except orjson.JSONDecodeError:
                        pass
                    await producer.send(OUT_TOPIC, m.value, key=m.key)
                    got += 1
        await producer.flush()
        return n / (time.monotonic() - t0)
    finally:
        await consumer.stop()
        await producer.stop()


async def _count_until(bootstrap: str, topic: str, n: int, timeout: float,
                       proc=None) -> tuple[float, float]:
    """Read `topic` from the beginning until n messages; (first arrival, last arrival)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=20)
    await consumer.start()
    try:
        got, first, deadline = 0, None, time.monotonic() + timeout
        while got < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: {got} of {n} messages after {timeout:.0f} s")
            if proc is not None and proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}; see {proc.log_path}")
            batch = await consumer.getmany(timeout_ms=500, max_records=10000)
            size = sum(len(v) for v in batch.values())
            if size and first is None:
                first = time.monotonic()
            got += size
        return first, time.monotonic()
    finally:
        await consumer.stop()


def faust_trivial_eps(broker: Broker, n: int, work_dir: Path, tuned: bool) -> float:
    """Forwarded events/s of bench/faust_trivial.py, from its first output to its n-th."""
    name = "faust-trivial-tuned" if tuned else "faust-trivial"
    out_topic = f"bench.{name}-out"
    asyncio.run(topics.ensure_topics(broker.bootstrap, PARTITIONS, names=(out_topic,)))
    env = {**os.environ, "BENCH_BROKER": broker.url, "BENCH_IN": IN_TOPIC, "BENCH_OUT": out_topic,
           "BENCH_WEB_PORT": str(free_port()), "BENCH_DATADIR": str(work_dir / name),
           "BENCH_TUNED": "1" if tuned else "0"}
    proc = spawn(name, [sys.executable, "-m", "bench.faust_trivial", "worker", "-l", "warn"],
                 work_dir, env=env)
    with stopping(proc):
        first, last = asyncio.run(_count_until(broker.bootstrap, out_topic, n, 900, proc))
    return (n - 1) / (last - first)


# ---------------------------------------------------------------- the pipeline

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


class _ConstantScores:
    """processor_alone_eps only: answers every row at once with fixed scores, so that
    the figure is memberstream's per-event work and nothing else."""
    model_version = "bench@constant"

    def __init__(self, checkpoints: int):
        self.checkpoints = checkpoints  # churn at every checkpoint too, as the served model

    async def score(self, rows):
        from stream.scorer import Scores

        n = len(rows)
        return Scores(np.full(n, 0.3, np.float32), [[f"item{i}" for i in range(10)]] * n,
                      np.full((n, 10), 0.1, np.float32), np.full((n, self.checkpoints), 0.3, np.float32))


def processor_alone_eps(lines: list[bytes], settings: Settings) -> float:
    """The processor over the bench log in this process, in the worker's batches, the
    pending members scored after every batch and every output and changelog value
    built; CPU seconds of this process."""
    from aiokafka.partitioner import DefaultPartitioner

    import gc

    from stream.processor import MemberProcessor, Record, tune_gc

    partitioner, all_partitions = DefaultPartitioner(), list(range(PARTITIONS))
    partitions: dict[int, int] = {}
    records = []
    for line in lines:
        try:
            key = str(orjson.loads(line).get("member_id", "")).encode()
        except (orjson.JSONDecodeError, AttributeError):
            key = b""
        p = partitioner(key or None, all_partitions, all_partitions)  # as the replay's producer
        records.append(Record(p, partitions.setdefault(p, 0), key or None, line))
        partitions[p] += 1
    proc = MemberProcessor(settings, {}, _ConstantScores(len(settings.inactivity_checkpoints_days)))

    async def run() -> None:
        for i in range(0, len(records), settings.batch_max_events):
            results = [await proc.process(records[i:i + settings.batch_max_events])]
            while proc.pending:
                results.append(await proc.score_pending(settings.triton_max_rows))
            for r in results:
                for state in r.changed.values():
                    state.to_bytes()

    thresholds = gc.get_threshold()
    tune_gc(settings.gc_threshold)  # as the worker runs
    try:
        t = time.process_time()
        asyncio.run(run())
        return len(records) / (time.process_time() - t)
    finally:
        gc.set_threshold(*thresholds)


def latency_events(lines: list[bytes], rate: int, count: int, start_ms: int) -> list[tuple[bytes, str, bytes]]:
    """`count` valid events of the log as new members (prefixed ids): (key, event_id, value).
    Event time continues after the log's end at the offered pace, as live traffic would
    (older times would set off every new member's inactivity checkpoints at once)."""
    from stream.parsing import Rejected, parse_event

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
    from stream.parsing import Rejected, parse_event

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
    from stream import framing

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
    asyncio.run(topics.ensure_topics(broker.bootstrap, PARTITIONS, names=tuple(names)))
    relays = [spawn(f"relay-{i}", [sys.executable, "-m", "bench.relay", broker.bootstrap, names[i],
                                   names[i + 1], str(fetch_max_wait_ms)], work) for i in range(2)]

    def settler(rate: int, n: int) -> Callable[[dict, dict], None]:
        return lambda sent, arrivals: wait_until(lambda: len(arrivals) >= len(sent), 60,
                                                 f"floor relays at {rate} events/s")

    with stopping(*relays):
        for relay in relays:
            wait_until(lambda: b"ready" in relay.log_path.read_bytes(), 60, relay.name, relay)
        return _latencies(broker.bootstrap, lines, names[0], names[2], "event_id", settler, say)[0]


def latency_ms(broker: Broker, worker: Worker, lines: list[bytes], say: Callable[[str], None],
               frames_topic: str) -> tuple[dict, dict]:
    """Event-to-recommendation-update latency at fixed offered rates, produce time to
    arrival at a consumer, over every event whose update arrived; and its stages
    (`latency_stages`, the worker's frames in `frames_topic`)."""
    def settler(rate: int, n: int) -> Callable[[dict, dict], None]:
        before = worker.processed()

        def settle(sent: dict, arrivals: dict) -> None:
            wait_until(lambda: worker.settled(before + n), 300,
                       f"worker to catch up after {rate} events/s", worker.process)
            time.sleep(1.0)  # the last updates' way to the collector
        return settle

    return _latencies(broker.bootstrap, lines, topics.SHOP_EVENTS, topics.RECOMMENDATIONS, "based_on",
                      settler, say, lambda sent, arrivals: latency_stages(broker.bootstrap, frames_topic,
                                                                          sent, arrivals))


# ---------------------------------------------------------------- Triton

def load_model(settings: Settings):
    """The exported model in-process, as the backend builds it: (model, vocab, hparams)."""
    import torch

    from models.encoding import ItemVocabulary
    from models.network import MemberTransformer

    export = settings.triton_repo / settings.triton_model / "1"
    hp = json.loads((export / "hparams.json").read_text())
    vocab = ItemVocabulary.load(export / "vocab.json")
    state = torch.load(export / "weights.pt", weights_only=True)
    state.pop("_vocab_sha256")
    model = MemberTransformer(len(vocab), hp["max_len"], hp["d_model"], hp["n_layers"],
                              hp["n_heads"], 0.0, hp["churn_horizon_days"])
    model.load_state_dict(state)
    model.eval()
    return model, vocab, hp


def _rows(lines: list[bytes], count: int, max_len: int):
    """`count` distinct full-length real sequences as model rows: Online Retail members'
    rolling windows of `max_len` events, one after each event (no two rows equal, so
    no request of the table is answered from the served model's sequence cache)."""
    from stream.member_state import MemberState, apply_event, model_inputs
    from stream.parsing import Rejected, parse_event

    states: dict[str, MemberState] = {}
    rows = []
    for line in lines:
        if len(rows) == count:
            break
        e = parse_event(line, None, 1 << 20)
        if not isinstance(e, Rejected) and not e.member_id.startswith("yc-"):
            s = states.setdefault(e.member_id, MemberState(e.member_id, 0))
            apply_event(s, e, max_len)
            if s.n_events >= max_len:
                rows.append(model_inputs(s, max_len))
    return (np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], dtype=np.int8),
            np.array([r[2] for r in rows], dtype=np.float32),
            np.full((len(rows), 1), 7 * 86400.0, dtype=np.float32))


def _timed(fn: Callable[[int], None], seconds: float) -> list[float]:
    """Call fn(0), fn(1), ... for `seconds` (at least 5 calls); their durations."""
    fn(0)
    times: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end or len(times) < 5:
        t = time.perf_counter()
        fn(len(times) + 1)
        times.append(time.perf_counter() - t)
    return times


def triton_table(triton: Triton, settings: Settings, rows, loaded, seconds: float = 2.0) -> list[dict]:
    """Per batch size: one gRPC client request at a time to the served model, and the
    same computation (models/serving.predict) in this process as the ceiling. Every
    request takes the next rows of a pool of distinct sequences: a repeated row would
    be served from the backend's sequence cache and flatter the served figure."""
    import torch
    import tritonclient.grpc as grpc

    from models.serving import predict

    model, vocab, hp = loaded
    client = grpc.InferenceServerClient(triton.grpc_url.removeprefix("grpc://"))
    names = ("ITEM_IDS", "EVENT_TYPES", "GAPS", "SILENCE")
    dtypes = ("BYTES", "INT8", "FP32", "FP32")
    pool = len(rows[0])
    cursor = 0  # rows sent to Triton so far; never wraps within the pool (checked)
    out = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the backend (config.pbtxt torch_threads)

    def take(start: int, b: int):
        idx = np.arange(start, start + b) % pool
        return [a[idx] for a in rows]

    def served(b: int) -> Callable[[int], None]:
        def call(_: int) -> None:
            nonlocal cursor
            inputs = []
            for name, dtype, arr in zip(names, dtypes, take(cursor, b)):
                i = grpc.InferInput(name, list(arr.shape), dtype)
                i.set_data_from_numpy(arr)
                inputs.append(i)
            cursor += b
            client.infer(settings.triton_model, inputs)
        return call

    def local(b: int) -> Callable[[int], None]:
        return lambda i: predict(model, vocab, *take(i * b, b), k=hp["top_k"])

    try:
        for b in BATCH_SIZES:
            row = {"batch": b}
            for label, fn in (("triton", served(b)), ("in_process", local(b))):
                times = _timed(fn, seconds)
                row[f"{label}_rows_per_s"] = b * len(times) / sum(times)
                row[f"{label}_p50_ms"] = 1000 * statistics.median(times)
                row[f"{label}_p99_ms"] = 1000 * float(np.percentile(times, 99))
            out.append(row)
    finally:
        torch.set_num_threads(threads)
        client.close()
    if cursor > pool:
        raise RuntimeError(f"Triton table sent {cursor} rows from a pool of {pool}: rows repeated")
    return out


def state_bytes_after_50(lines: list[bytes], settings: Settings, loaded) -> dict:
    """Serialised state of the first member to reach 50 valid events in the log, with
    what the pipeline adds: the model's churn probability and top-K recommendations."""
    from models.serving import predict
    from stream.member_state import MemberState, apply_event, model_inputs
    from stream.parsing import Rejected, parse_event
    from stream.policies.recommendation_policy import recommendation_update

    model, vocab, hp = loaded
    states: dict[str, MemberState] = {}
    for line in lines:
        e = parse_event(line, None, 1 << 20)
        if isinstance(e, Rejected):
            continue
        s = states.setdefault(e.member_id, MemberState(e.member_id, 0))
        apply_event(s, e, settings.sequence_length)
        if s.n_events == 50:
            items, types, gaps = model_inputs(s, settings.sequence_length)
            churn, top, scores = predict(model, vocab, np.array([items], dtype=object),
                                         np.array([types], dtype=np.int8), np.array([gaps], dtype=np.float32),
                                         np.zeros((1, 1), np.float32), k=hp["top_k"])
            s.churn_probability = round(float(churn[0]), 4)
            recommendation_update(s, [i.decode() for i in top[0]], scores[0], settings.recommendations_k,
                                  "bench", False)
            return {"bytes": len(s.to_bytes()), "member_id": s.member_id}
    raise ValueError("no member reaches 50 events in the bench log")


# ---------------------------------------------------------------- the run

def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = None
    try:
        import torch
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - a machine description, never fatal
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "gpu": gpu, "python": platform.python_version()}


def commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return "unknown"
    return (sha or "unknown") + ("+dirty" if sha and dirty else "")


def run(settings: Settings, out: Path, say: Callable[[str], None] = print) -> dict:
    lines = bench_lines(settings, say)
    n = len(lines)
    work = settings.state_dir / "bench"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    results: dict = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit(),
                     "machine": machine(), "events": n, "partitions": PARTITIONS,
                     "command": "make bench"}
    broker = start_broker(work / "broker")
    with stopping(broker.process):
        say(f"loading {n} events into {IN_TOPIC} and {topics.SHOP_EVENTS} ...")
        asyncio.run(topics.ensure_topics(broker.bootstrap, PARTITIONS, names=(IN_TOPIC, OUT_TOPIC)))
        asyncio.run(replay(BENCH_LOG, broker.bootstrap, PARTITIONS, lines=lines, topic=IN_TOPIC))
        asyncio.run(replay(BENCH_LOG, broker.bootstrap, PARTITIONS, lines=lines))
        say("ceiling: raw aiokafka pass-through ...")
        results["ceiling_eps"] = asyncio.run(ceiling_eps(broker.bootstrap, n))
        say(f"  {results['ceiling_eps']:,.0f} events/s")
        say("latency floor: the same events through two raw aiokafka relays ...")
        results["latency_floor_ms"] = latency_floor_ms(broker, lines, settings.tansu_fetch_max_wait_ms, work, say)
        say("trivial Faust agent (Faust defaults) ...")
        results["faust_trivial_eps"] = faust_trivial_eps(broker, n, work, tuned=False)
        say(f"  {results['faust_trivial_eps']:,.0f} events/s")
        say("trivial Faust agent (memberstream's poll settings, 5 ms producer linger) ...")
        results["faust_trivial_tuned_eps"] = faust_trivial_eps(broker, n, work, tuned=True)
        say(f"  {results['faust_trivial_tuned_eps']:,.0f} events/s")
        triton = start_triton(settings.triton_repo, settings.triton_model, work)
        with stopping(triton.process):
            def pipeline(key: str, name: str, then=None, **env: str) -> None:
                """One worker over the whole log: results[key] and results[key without _eps];
                then(worker), if given, while it still runs."""
                worker = start_worker(worker_env(broker, triton, state_dir=str(work / f"state-{name}"), **env),
                                      work, name=f"bench-worker-{name}")
                with stopping(worker.process):
                    pipe = pipeline_eps(worker, n)
                    results[key], results[key.removesuffix("_eps")] = pipe.pop("eps"), pipe
                    say(f"  {results[key]:,.0f} events/s; {pipe}")
                    if then is not None:
                        then(worker)

            def latency(worker: Worker) -> None:
                say("latency at fixed offered rates (the default pipeline) ...")
                results["latency_ms"], results["latency_stages_ms"] = latency_ms(
                    broker, worker, lines, say, topics.frames_topic(settings.app_id))

            # The direct path first, under its own application id (consumer groups, changelog).
            say("memberstream pipeline without frames (MEMBERSTREAM_FRAMES=false) ...")
            pipeline("pipeline_direct_eps", "direct", frames="false", app_id="bench-direct")
            say("memberstream pipeline, the default (batcher + frames) ...")
            pipeline("pipeline_eps", "default", then=latency)
            say("Triton per batch size ...")
            loaded = load_model(settings)
            results["triton"] = triton_table(triton, settings, _rows(lines, TRITON_POOL,
                                                                     settings.sequence_length), loaded)
    say("processor alone (no Kafka, no Faust, constant scores) ...")
    results["processor_alone_eps"] = processor_alone_eps(lines, settings)
    say(f"  {results['processor_alone_eps']:,.0f} events/s")
    state = state_bytes_after_50(lines, settings, loaded)
    results["state_bytes_per_member"] = state["bytes"]
    results["state_member"] = state["member_id"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    table = report(results)
    (out.parent / "RESULTS.md").write_text(results_md(results, table))
    say(table)
    return results


def report(r: dict) -> str:
    m = r["machine"]
    lines = [f"memberstream bench  {r['date']}  commit {r['commit']}  {m['cores']} cores  {m['cpu']}"
             f"  GPU {m['gpu'] or 'none'}",
             f"{r['events']:,} events of real data (Online Retail + YooChoose-100k), "
             f"{r['partitions']} partitions, embedded broker (Tansu)", "",
             f"{'measure':<44}{'events/s':>10}{'vs ceiling':>12}{'vs Faust':>10}"]
    for key, label in (("ceiling_eps", "ceiling: raw aiokafka pass-through"),
                       ("faust_trivial_eps", "trivial Faust agent (defaults)"),
                       ("faust_trivial_tuned_eps", "trivial Faust agent (tuned)"),
                       ("pipeline_direct_eps", "memberstream pipeline (no frames, 1 worker)"),
                       ("pipeline_eps", "memberstream pipeline (default, 1 worker)"),
                       ("processor_alone_eps", "processor alone (1 core, no I/O, no model)")):
        v = r[key]
        lines.append(f"{label:<44}{v:>10,.0f}{v / r['ceiling_eps']:>11.1%}"
                     f"{v / r['faust_trivial_eps']:>9.1f}x")
    p = r["pipeline"]
    lines += ["", f"pipeline: {p['events']:,} valid events, {p['dead_lettered']:,} dead-lettered, "
              f"{p['scored_rows']:,} rows scored in {p['triton_requests']:,} "
              f"Triton requests, {p['alerts']:,} alerts, {p['segment_changes']:,} segment changes, "
              f"{p['recommendation_updates']:,} recommendation updates",
              f"in {p['frames']:,} frames; without frames: "
              f"{r['pipeline_direct']['scored_rows']:,} rows scored, "
              f"{r['pipeline_direct']['alerts']:,} alerts (the same decisions)",
              f"checkpoints: {p.get('checkpoint_rows', 0):,} scored by request, "
              f"{p.get('checkpoints_known', 0):,} decided from the member's last scoring; "
              f"{p.get('checkpoint_updates', 0):,} rows also answered the member's pending scoring",
              f"the agent waited, of {p.get('seconds', 0):.2f} s: " + ", ".join(
                  f"{reason} {v:.2f} s" for reason, v in p.get("agent_wait_s", {}).items()), "",
              "latency, event produced -> recommendation update consumed (ms); floor: the same",
              "events through two raw aiokafka relays (the pipeline's two Kafka hops), same run",
              f"{'offered events/s':>17}{'p50':>8}{'p95':>8}{'p99':>8}{'updates measured':>18}"
              f"{'floor p50':>11}{'p95':>8}{'p99':>8}"]
    floor = r.get("latency_floor_ms", {})
    for rate, v in r["latency_ms"].items():
        f = floor.get(rate)
        tail = f"{f['p50']:>11.1f}{f['p95']:>8.1f}{f['p99']:>8.1f}" if f else ""
        lines.append(f"{rate:>17}{v['p50']:>8.1f}{v['p95']:>8.1f}{v['p99']:>8.1f}"
                     f"{v['updates_measured']:>11,} of {v['events']:,}{tail}")
    lines += ["", "latency by stage (ms, p50 / p99), from the records' timestamps: produced -> frame sent",
              "by the batcher -> update sent by the worker -> update consumed",
              f"{'offered events/s':>17}{'to frame':>16}{'to output':>16}{'to arrival':>16}"]
    for rate, st in r.get("latency_stages_ms", {}).items():
        lines.append(f"{rate:>17}" + "".join(f"{v['p50']:>8.1f} /{v['p99']:>6.1f}" for v in st.values()))
    lines += ["", "model: Triton (gRPC, one request at a time) vs the same computation in-process",
              f"{'batch':>6}{'Triton rows/s':>15}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'in-process rows/s':>19}{'p50 ms':>9}{'served/in-proc':>16}"]
    for t in r["triton"]:
        lines.append(f"{t['batch']:>6}{t['triton_rows_per_s']:>15,.0f}{t['triton_p50_ms']:>9.2f}"
                     f"{t['triton_p99_ms']:>9.2f}{t['in_process_rows_per_s']:>19,.0f}"
                     f"{t['in_process_p50_ms']:>9.2f}"
                     f"{t['triton_rows_per_s'] / t['in_process_rows_per_s']:>15.1%}")
    lines += ["", f"state bytes per member after 50 events: {r['state_bytes_per_member']} "
              f"(member {r['state_member']}, with its churn probability and top-10)"]
    return "\n".join(lines)


def results_md(r: dict, table: str) -> str:
    gpu = HERE / "RESULTS-gpu.md"
    gpu_text = gpu.read_text() if gpu.is_file() else (
        "## GPU\n\nNot measured: no session with a GPU has run `make bench-gpu` (python -m bench.gpu) yet.\n")
    return (f"# Benchmark results\n\nWritten by `{r['command']}` (bench/bench.py) on {r['date']}, "
            f"commit {r['commit']}, on {r['machine']['cores']} cores ({r['machine']['cpu']}), "
            f"GPU: {r['machine']['gpu'] or 'none'}. Raw figures: bench/results.json.\n\n"
            f"## CPU, one run, side by side\n\n```\n{table}\n```\n\n{gpu_text}")
