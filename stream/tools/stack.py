"""The whole embedded stack (broker, Triton, workers) as one context manager.

`memberstream up`, `demo`, the integration tests and the benchmarks all
start the real parts through this, and everything it started is stopped by
PID when the block ends, however it ends.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from stream.tools.launcher import (Broker, Process, Triton, WorkerProcess, start_broker, start_triton, start_worker,
                                   worker_env)
from stream.settings import STACK_ENV, Settings
from stream.tools.supervisor import WORKER_EXITS, Backoff, Child, Supervisor


@dataclass
class Stack:
    broker: Broker
    triton: Triton
    workers: list[WorkerProcess] = field(default_factory=list)
    work_dir: Path = Path(".")
    worker_env: dict[str, str] = field(default_factory=dict)

    def env(self, settings: Settings) -> dict[str, str]:
        """MEMBERSTREAM_* variables that point a process at this stack."""
        return worker_env(self.broker, self.triton, settings.partitions, app_id=settings.app_id)

    def settings(self, base: Settings) -> Settings:
        return base.model_copy(update={
            "broker_url": self.broker.url, "triton_url": self.triton.grpc_url,
            "embedded_broker": True})

    def add_worker(self, settings: Settings) -> WorkerProcess:
        worker = start_worker(self._worker_env(settings), self.work_dir, name=f"worker-{len(self.workers) + 1}")
        self.workers.append(worker)
        return worker

    def _worker_env(self, settings: Settings) -> dict[str, str]:
        return {**self.env(settings), **self.worker_env}

    def restart_worker(self, index: int, settings: Settings) -> Process:
        """A new worker in place of `workers[index]`, under its name and on its web port."""
        old = self.workers[index]
        self.workers[index] = start_worker(self._worker_env(settings), self.work_dir, name=old.process.name,
                                           port=old.web_port)
        return self.workers[index].process

    def restart_triton(self, settings: Settings) -> Process:
        """A new Triton on the ports of the old one, which the workers know."""
        self.triton = start_triton(settings.triton_repo, settings.triton_model, self.work_dir,
                                   ports=self.triton.ports)
        return self.triton.process

    def processes(self) -> list[Process]:
        return [self.broker.process, self.triton.process, *(w.process for w in self.workers)]

    def supervisor(self, settings: Settings, say: Callable[[str], None],
                   on_restart: Callable[[], None] = lambda: None) -> Supervisor:
        """Restarts a dead worker or Triton (stream/tools/supervisor.py); the broker's
        death ends the stack. `on_restart`: called after each restart."""
        def backoff() -> Backoff:
            return Backoff(settings.restart_base_s, settings.restart_max_s, settings.restart_stable_s)

        def restarting(start: Callable[[], Process]) -> Callable[[], Process]:
            def restart() -> Process:
                proc = start()
                on_restart()
                return proc
            return restart

        lost = ("The embedded broker keeps its topics in memory only: the events not yet processed, "
                "the outputs not yet consumed and the member tables' changelogs are lost with it. "
                "Stopped the stack; start it again with `memberstream up` and replay what the shop "
                "needs (a Kafka cluster of your own keeps them: docs/DESIGN.md).")
        children = [Child("broker", self.broker.process, lost=lost),
                    Child("triton", self.triton.process, restarting(lambda: self.restart_triton(settings)),
                          backoff=backoff())]
        for i, w in enumerate(self.workers):
            children.append(Child(w.process.name, w.process,
                                  restarting(lambda i=i: self.restart_worker(i, settings)),
                                  exits=WORKER_EXITS, backoff=backoff()))
        return Supervisor(children, say)


@contextlib.contextmanager
def running_stack(settings: Settings, work_dir: Path, workers: int = 1,
                  say: Callable[[str], None] = lambda s: None,
                  worker_env: dict[str, str] | None = None) -> Iterator[Stack]:
    work_dir.mkdir(parents=True, exist_ok=True)
    started: list[Process] = []
    stack = None
    try:
        broker = start_broker(work_dir)
        started.append(broker.process)
        say(f"broker  {broker.url} (Tansu, memory only, pid {broker.process.pid})")
        triton = start_triton(settings.triton_repo, settings.triton_model, work_dir)
        started.append(triton.process)
        say(f"triton  grpc {triton.grpc_url}  http {triton.http_url} (pid {triton.process.pid})")
        stack = Stack(broker, triton, work_dir=work_dir, worker_env=worker_env or {})
        for _ in range(workers):
            worker = stack.add_worker(settings)
            say(f"worker  {worker.web_url} (pid {worker.process.pid})")
        yield stack
    finally:
        # The stack's processes now (a supervisor may have replaced some), else those started.
        for proc in reversed(stack.processes() if stack is not None else started):
            proc.stop()


def write_stack_env(stack: Stack, settings: Settings, path: Path = STACK_ENV) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    env = stack.env(settings)
    if stack.workers:
        env["MEMBERSTREAM_WEB_URL"] = stack.workers[0].web_url
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    write_stack_pids(stack, path)
    return path


def write_stack_pids(stack: Stack, env_path: Path = STACK_ENV) -> Path:
    """`stack.json` beside `stack.env`: each process's PID and address, rewritten after
    every restart (what an operator, or a test, looks the processes up in)."""
    path = env_path.with_suffix(".json")
    doc = {"broker": {"pid": stack.broker.process.pid, "url": stack.broker.url},
           "triton": {"pid": stack.triton.process.pid, "grpc_url": stack.triton.grpc_url,
                      "http_url": stack.triton.http_url},
           "workers": [{"name": w.process.name, "pid": w.process.pid, "web_url": w.web_url}
                       for w in stack.workers]}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)
    return path
