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
  latency_inside           per rate, where the time goes inside the worker (means from its /metrics)
  latency_floor_ms         the same events through two raw aiokafka relays: the Kafka hops alone
  triton                   rows/s and latency per batch size, served vs in-process
  incremental              rows/s per batch size in-process for members who added one event since
                           their last scoring: full encoding vs incremental (encoder_cache=incremental)
  state_bytes_per_member   serialised member state after 50 events

Each measure is a module of bench/ (ceiling, faust_baseline, pipeline,
processor_alone, latency, triton_table, state_size); the shared set-up is
bench/loaded_stack.py and bench/bench_log.py. `run` here starts one broker and one
Triton for them, runs every measure and writes the results (bench/report.py).
"""
from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Callable

from bench.bench_log import BENCH_LOG, bench_lines
from bench.ceiling import ceiling_eps
from bench.exported_model import load_model
from bench.faust_baseline import faust_trivial_eps
from bench.latency import latency_floor_ms, latency_ms
from bench.pipeline import pipeline_eps
from bench.processor_alone import processor_alone_eps
from bench.provenance import commit, machine
from bench.report import report, results_md
from bench.loaded_stack import IN_TOPIC, OUT_TOPIC, PARTITIONS, bench_worker_env
from bench.state_size import state_bytes_after_50
from bench.triton_table import (INCREMENTAL_ROWS, TRITON_POOL, incremental_table, model_rows,
                                prefix_pairs, triton_table)
from stream.contract import topics
from stream.kafka.admin import ensure_topics
from stream.tools.launcher import WorkerProcess, start_broker, start_triton, start_worker, stopping
from stream.tools.replay import replay
from stream.settings import Settings


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
        asyncio.run(ensure_topics(broker.bootstrap, PARTITIONS, names=(IN_TOPIC, OUT_TOPIC)))
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
                worker = start_worker(bench_worker_env(broker, triton, state_dir=str(work / f"state-{name}"), **env),
                                      work, name=f"bench-worker-{name}")
                with stopping(worker.process):
                    pipe = pipeline_eps(worker, n)
                    results[key], results[key.removesuffix("_eps")] = pipe.pop("eps"), pipe
                    say(f"  {results[key]:,.0f} events/s; {pipe}")
                    if then is not None:
                        then(worker)

            def latency(worker: WorkerProcess) -> None:
                say("latency at fixed offered rates (the default pipeline) ...")
                results["latency_ms"], results["latency_stages_ms"], results["latency_inside"] = latency_ms(
                    broker, worker, lines, say, topics.frames_topic(settings.app_id), triton)

            # The direct path first, under its own application id (consumer groups, changelog).
            say("memberstream pipeline without frames (MEMBERSTREAM_FRAMES=false) ...")
            pipeline("pipeline_direct_eps", "direct", frames="false", app_id="bench-direct")
            say("memberstream pipeline, the default (batcher + frames) ...")
            pipeline("pipeline_eps", "default", then=latency)
            say("Triton per batch size ...")
            loaded = load_model(settings)
            results["triton"] = triton_table(triton, settings, model_rows(lines, TRITON_POOL,
                                                                          settings.sequence_length), loaded)
    say("incremental encoding per batch size (in-process) ...")
    results["incremental"] = incremental_table(prefix_pairs(lines, INCREMENTAL_ROWS, settings.sequence_length),
                                               loaded)
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
