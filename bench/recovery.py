"""What a member costs in the changelog, and how long a worker takes to recover it.

    python -m bench.recovery [MEMBERS ...]      # default: 100000 200000

The member states are real: the processor runs over the bench log in this
process, as processor_alone does (bench/processor_alone.py), and their
serialised sizes are counted (mean and percentiles). For each size, a fresh
embedded broker gets that many of those states in the members changelog,
cycled under new member ids on the partitions their ids hash to, closed as the
worker closes its commits; then one worker starts on it, and the time from its
spawn to its table holding every member is taken. A worker started on an empty
changelog in the same run is the floor (start-up alone); the difference over
the members is the recovery cost per member. Prints a table; exit 0, or 1 when
a worker recovers a different number of members than were written.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

import numpy as np

from bench.loaded_stack import PARTITIONS, bench_worker_env
from stream.settings import Settings

CHANGELOG = "memberstream-members-changelog"


def real_states(settings: Settings) -> list:
    """Every member's state after the bench log (processor in this process, no model)."""
    from bench.bench_log import bench_lines
    from bench.processor_alone import _ConstantScores, bench_records, run_batches
    from stream.processing.processor import MemberProcessor

    proc = MemberProcessor(settings, {}, _ConstantScores(len(settings.inactivity_checkpoints_days)))
    asyncio.run(run_batches(proc, bench_records(bench_lines(settings)), settings))
    return list(proc.cache.values())


async def _write(bootstrap: str, states: list, members: int) -> int:
    """`members` states into the changelog, cycled under ids of their own; returns bytes."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.partitioner import DefaultPartitioner

    from stream.kafka.tansu import end_marker

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(CHANGELOG, PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"})])
    finally:
        await admin.close()
    partitioner, every = DefaultPartitioner(), list(range(PARTITIONS))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=262144, acks="all")
    await producer.start()
    written, newest = 0, {p: 0 for p in every}
    originals = [(state.member_id, state.partition) for state in states]
    try:
        pending = []
        for i in range(members):
            state = states[i % len(states)]
            key = f"r{i}-{originals[i % len(states)][0]}".encode()
            p = partitioner(key, every, every)
            state.member_id, state.partition = key.decode(), p
            value = state.to_bytes()
            written += len(key) + len(value)
            newest[p] = max(newest[p], state.last_ts)
            pending.append(await producer.send(CHANGELOG, value, key=key, partition=p))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        for p in every:  # as the worker closes a commit on the embedded broker (docs/broker.md)
            key, value = end_marker(p, newest[p])
            await (await producer.send(CHANGELOG, value, key=key, partition=p))
    finally:
        await producer.stop()
        for state, (member, partition) in zip(states, originals):
            state.member_id, state.partition = member, partition
    return written


def _rss_mb(pid: int) -> float:
    """Resident memory of a process, MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _recovered_in(triton, members: int, states: list, work: Path) -> tuple[float, int, int, float]:
    """(seconds from spawn to every member in the table, members it holds, bytes written,
    the worker's resident MB then)."""
    from stream.contract import metrics as names
    from stream.tools.launcher import start_broker, start_worker, stopping, wait_until

    broker = start_broker(work / f"broker-{members}")
    with stopping(broker.process):
        written = asyncio.run(_write(broker.bootstrap, states, members)) if members else 0
        env = bench_worker_env(broker, triton, state_dir=str(work / f"worker-{members}"))
        t = time.monotonic()
        worker = start_worker(env, work, name=f"worker-{members}", timeout=600)
        with stopping(worker.process):
            def held() -> bool:
                return worker.metrics().get(names.MEMBERS, -1) >= members and worker.health()[0] == 200
            wait_until(held, 1200, f"the worker to recover {members} members", worker.process, 0.2)
            seconds = time.monotonic() - t
            return seconds, int(worker.metrics()[names.MEMBERS]), written, _rss_mb(worker.process.pid)


def main() -> int:
    from stream.tools.launcher import start_triton, stopping

    try:
        sizes = [int(a) for a in sys.argv[1:]] or [100_000, 200_000]
    except ValueError:
        print(f"recovery: member counts are whole numbers, not {' '.join(sys.argv[1:])!r}", file=sys.stderr)
        return 2
    logging.getLogger("stream").setLevel(logging.ERROR)  # the log's dead letters, one line each
    settings = Settings()
    states = real_states(settings)
    sizes_b = np.array([len(s.to_bytes()) + len(s.member_id.encode()) for s in states])
    events = np.array([len(s.items) for s in states])
    work = settings.state_dir / "bench-recovery"
    work.mkdir(parents=True, exist_ok=True)
    triton = start_triton(settings.triton_repo, settings.triton_model, work)
    with stopping(triton.process):
        floor, _, _, floor_rss = _recovered_in(triton, 0, states, work)
        rows = [(n, *_recovered_in(triton, n, states, work)) for n in sizes]
    print(f"member states after the bench log: {len(states):,} members, key + value bytes mean "
          f"{sizes_b.mean():,.0f}, p50 {np.percentile(sizes_b, 50):,.0f}, p99 {np.percentile(sizes_b, 99):,.0f}, "
          f"max {sizes_b.max():,}; events kept per member mean {events.mean():.1f} (at most "
          f"{settings.sequence_length}); full-window members {np.mean(events == settings.sequence_length):.1%}")
    print(f"worker start-up on an empty changelog (the floor): {floor:.1f} s, {floor_rss:,.0f} MB resident")
    print(f"{'members':>10s}{'changelog MB':>14s}{'to recovered s':>16s}{'recovery s':>12s}"
          f"{'s per million':>15s}{'members held':>14s}{'worker MB':>11s}{'B per member':>14s}")
    bad = 0
    for n, seconds, held, written, rss in rows:
        recovery = seconds - floor
        print(f"{n:10,d}{written / 1e6:14.1f}{seconds:16.1f}{recovery:12.1f}{recovery / n * 1e6:15.0f}{held:14,d}"
              f"{rss:11,.0f}{(rss - floor_rss) * 2 ** 20 / n:14,.0f}")
        bad += held != n
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
