"""Latency of worker settings side by side, each beside its own floor:
`python -m bench.latency_ab [--rate R] [--events N] [SETTINGS ...]`.

Each SETTINGS is `name=value[,name=value...]` (Settings field names; "" is the
defaults), and may be given twice to see the spread between runs of one setting.
Per SETTINGS, in order: a fresh embedded broker with the first N events of the
bench log, the Kafka floor at the rate (bench.latency: two raw aiokafka relays),
then a worker with the settings that catches up on those events, then its latency
at the rate and where it goes. One Triton serves every run. The latency events'
times follow the N events' own end, so no old member's checkpoints fall due.
Used for issue 20's latency target; a setting is worth keeping only if it beats
the spread of the same setting run twice.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import shutil

import bench.latency as latency
from bench.bench_log import BENCH_LOG, bench_lines
from bench.loaded_stack import PARTITIONS, bench_worker_env
from bench.pipeline import pipeline_eps
from stream.contract import topics
from stream.settings import Settings
from stream.tools.launcher import start_broker, start_triton, start_worker, stopping
from stream.tools.replay import replay


def parse_settings(text: str) -> dict[str, str]:
    """`name=value,name=value` -> {name: value}; "" -> {} (the defaults)."""
    pairs = [part for part in text.split(",") if part]
    bad = [part for part in pairs if "=" not in part]
    if bad:
        raise ValueError(f"not name=value: {', '.join(bad)}")
    return dict(part.split("=", 1) for part in pairs)


def row(label: str, r: dict, floor: dict, stages: dict, inside: dict) -> str:
    """One table line: latency p50/p99, the floor's, the stages' p50, the worker's means and its GC pauses."""
    return (f"{label[:34]:<34} {r['p50']:>6.1f} {r['p99']:>6.1f} {floor['p50']:>6.1f} {floor['p99']:>6.1f} "
            f"{stages['offer_to_frame']['p50']:>6.1f} {stages['frame_to_output']['p50']:>7.1f} "
            f"{stages['output_to_arrival']['p50']:>7.1f} {inside['pending_ms']:>7.1f} {inside['request_ms']:>7.1f} "
            f"{inside.get('server_ms', 0.0):>6.1f} {inside['rows_per_request']:>5.1f} {r['updates_measured']:>7,} "
            f"{inside.get('gc_pauses', 0):>5,} {inside.get('gc_ms', 0.0):>6.1f}")


HEADER = (f"{'settings':<34} {'p50':>6} {'p99':>6} {'fl p50':>6} {'fl p99':>6} {'frame':>6} {'output':>7} "
          f"{'arrival':>7} {'pending':>7} {'request':>7} {'server':>6} {'rows':>5} {'updates':>7} {'gc':>5} {'gc ms':>6}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="*", default=[""], help="name=value,... per run ('' = defaults)")
    parser.add_argument("--rate", type=int, default=2000, help="offered events/s")
    parser.add_argument("--events", type=int, default=60000, help="bench log events the worker catches up on")
    args = parser.parse_args()
    try:
        runs = [parse_settings(text) for text in args.settings]
        unknown = sorted({name for env in runs for name in env} - set(Settings.model_fields))
        if unknown:
            raise ValueError(f"no such setting: {', '.join(unknown)}")
    except ValueError as exc:
        parser.exit(2, f"latency_ab: {exc}\n")
    logging.disable(logging.CRITICAL)
    latency.LATENCY_RATES = (args.rate,)
    settings = Settings()
    lines = bench_lines(settings)[:args.events]
    work = settings.state_dir / "latency-ab"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"latency at {args.rate} events/s (ms; stages and worker means at p50 / mean), after {len(lines):,} "
          f"events of the bench log")
    print(HEADER)
    rate = str(args.rate)
    triton = start_triton(settings.triton_repo, settings.triton_model, work)
    with stopping(triton.process):
        for n, env in enumerate(runs):
            broker = start_broker(work / f"broker-{n}")
            with stopping(broker.process):
                asyncio.run(replay(BENCH_LOG, broker.bootstrap, PARTITIONS, lines=lines))
                floor = latency.latency_floor_ms(broker, lines, settings.tansu_fetch_max_wait_ms, work,
                                                 lambda _: None)
                worker = start_worker(bench_worker_env(broker, triton, state_dir=str(work / f"state-{n}"), **env),
                                      work, name=f"worker-{n}")
                with stopping(worker.process):
                    pipeline_eps(worker, len(lines))
                    out, stages, inside = latency.latency_ms(broker, worker, lines, lambda _: None,
                                                             topics.frames_topic(settings.app_id), triton)
            label = ",".join(f"{k}={v}" for k, v in env.items()) or "(defaults)"
            print(row(label, out[rate], floor[rate], stages[rate], inside[rate]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
