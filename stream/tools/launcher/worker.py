"""Faust workers: `memberstream worker` as its own process, configured only
through MEMBERSTREAM_* variables."""
from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from stream.contract import metrics as names
from stream.settings import environment
from stream.tools.launcher.broker import Broker
from stream.tools.launcher.process import Process, free_port, http_ok, spawn, wait_until
from stream.tools.launcher.triton import Triton


def worker_env(broker: Broker, triton: Triton, partitions: int, **settings: object) -> dict[str, str]:
    """The MEMBERSTREAM_* variables of a child process that talks to this embedded
    broker and Triton, with `partitions` per topic, and any other setting given by its
    field name (`state_dir=...`, `frames=False`): what the stack, the tests and the
    bench start workers and clients with."""
    return environment(broker_url=broker.url, triton_url=triton.grpc_url, triton_model=triton.model,
                       embedded_broker=True, partitions=partitions, **settings)


@dataclass
class WorkerProcess:
    """A running `memberstream worker` and its web server (`token`: its API token, if any)."""
    process: Process
    web_port: int
    token: str | None = None

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def metrics(self) -> dict[str, float]:
        """The worker's /metrics as {name: value} (labels kept in the name)."""
        with urllib.request.urlopen(f"{self.web_url}/metrics", timeout=5) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def member(self, member_id: str) -> dict:
        """GET /members/{member_id} (routed to the owning worker); HTTPError 404 if unknown."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        request = urllib.request.Request(f"{self.web_url}/members/{member_id}", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.load(r)

    def health(self) -> tuple[int, dict]:
        """The worker's /health: HTTP status and body (503 included)."""
        try:
            with urllib.request.urlopen(f"{self.web_url}/health", timeout=5) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    def processed(self) -> int:
        """Input records the worker has finished with (events, dead letters, duplicates)."""
        return records_taken(self.metrics())

    def settled(self, n: int) -> bool:
        """n input records taken and every member they touched scored, published and
        written to the changelog."""
        m = self.metrics()
        return (records_taken(m) >= n and m.get(names.SCORING_BACKLOG, 0) == 0
                and m.get(names.CHANGELOG_BACKLOG, 0) == 0)


def records_taken(metrics: dict[str, float]) -> int:
    """From a worker's /metrics: input records it has finished with."""
    return int(sum(metrics.get(name, 0) for name in names.RECORDS_TAKEN))


def start_worker(env_overrides: dict[str, str], log_dir: Path, name: str = "worker",
                 timeout: float = 90.0, port: int | None = None, ready: bool = True) -> WorkerProcess:
    """`memberstream worker` as its own process, configured only through MEMBERSTREAM_*;
    its web server on `port` (that of a worker this one replaces; default a free one).
    Returns once /health answers 200 (not `ready`: at once)."""
    port = port or free_port()
    env = dict(os.environ)
    env.update(env_overrides)
    env["MEMBERSTREAM_WEB_PORT"] = str(port)
    env["PYTHONUNBUFFERED"] = "1"
    proc = spawn(name, [sys.executable, "-m", "stream.cli", "worker"], log_dir, env=env)
    if not ready:
        return WorkerProcess(proc, port)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), timeout, name, proc,
                   interval=0.2)
    except BaseException:
        proc.stop()
        raise
    return WorkerProcess(proc, port)


