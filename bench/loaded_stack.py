"""The set-up the measures share: the bench broker's layout, a bench worker's
configuration, and a broker pre-loaded with the bench log beside a Triton."""
from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path
from typing import Iterator

from bench.bench_log import BENCH_LOG, bench_lines
from stream.tools.launcher import Broker, Triton, start_broker, start_triton, stopping, worker_env
from stream.tools.replay import replay
from stream.settings import Settings

IN_TOPIC, OUT_TOPIC = "bench.in", "bench.out"
PARTITIONS = 4


def bench_worker_env(broker: Broker, triton: Triton, **settings: object) -> dict[str, str]:
    """A bench worker's configuration: the embedded broker, this run's Triton, the bench's
    partitions (stream.tools.launcher.worker_env)."""
    return worker_env(broker, triton, PARTITIONS, **settings)


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
