"""The whole embedded stack (broker, Triton, workers) as one context manager.

`memberstream up`, `demo`, the integration tests and the benchmarks all
start the real parts through this, and everything it started is stopped by
PID when the block ends, however it ends.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from stream.tools.launcher import Broker, Triton, WorkerProcess, start_broker, start_triton, start_worker, worker_env
from stream.settings import STACK_ENV, Settings


@dataclass
class Stack:
    broker: Broker
    triton: Triton
    workers: list[WorkerProcess] = field(default_factory=list)
    work_dir: Path = Path(".")

    def env(self, settings: Settings) -> dict[str, str]:
        """MEMBERSTREAM_* variables that point a process at this stack."""
        return worker_env(self.broker, self.triton, settings.partitions, app_id=settings.app_id)

    def settings(self, base: Settings) -> Settings:
        return base.model_copy(update={
            "broker_url": self.broker.url, "triton_url": self.triton.grpc_url,
            "embedded_broker": True})

    def add_worker(self, settings: Settings, extra_env: dict[str, str] | None = None) -> WorkerProcess:
        env = {**self.env(settings), **(extra_env or {})}
        worker = start_worker(env, self.work_dir, name=f"worker-{len(self.workers) + 1}")
        self.workers.append(worker)
        return worker


@contextlib.contextmanager
def running_stack(settings: Settings, work_dir: Path, workers: int = 1,
                  say: Callable[[str], None] = lambda s: None,
                  worker_env: dict[str, str] | None = None) -> Iterator[Stack]:
    work_dir.mkdir(parents=True, exist_ok=True)
    started = []
    try:
        broker = start_broker(work_dir)
        started.append(broker.process)
        say(f"broker  {broker.url} (Tansu, memory only, pid {broker.process.pid})")
        triton = start_triton(settings.triton_repo, settings.triton_model, work_dir)
        started.append(triton.process)
        say(f"triton  grpc {triton.grpc_url}  http {triton.http_url} (pid {triton.process.pid})")
        stack = Stack(broker, triton, work_dir=work_dir)
        for _ in range(workers):
            worker = stack.add_worker(settings, worker_env)
            started.append(worker.process)
            say(f"worker  {worker.web_url} (pid {worker.process.pid})")
        yield stack
    finally:
        for proc in reversed(started):
            proc.stop()


def write_stack_env(stack: Stack, settings: Settings, path: Path = STACK_ENV) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    env = stack.env(settings)
    if stack.workers:
        env["MEMBERSTREAM_WEB_URL"] = stack.workers[0].web_url
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return path
