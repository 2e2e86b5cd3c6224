"""`memberstream up` supervises its stack, against the real processes: a worker
SIGKILLed in mid-replay and Triton SIGKILLed while the worker catches up are
restarted by `up` with a line naming what died; the members end as in a clean
run, with the alert ids of one (issue 16: `up` went on running with a dead
worker). The memory-only broker's death stops the stack with a message saying
what was lost, and `up` exits non-zero with every process gone."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from stream.contract import topics
from stream.tools.launcher import WorkerProcess, wait_until
from stream.tools.replay import replay
from stream.tools.tail import messages
from tests.fixtures.expected import derived

from .conftest import EXCERPT, ROOT, _children, _stat, as_in_a_clean_run, excerpt_lines

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

RATE = 100.0  # events/s: the excerpt takes 9 s; the worker is killed after 250 of them


class Up:
    """`memberstream up` as a child process, its output collected by a thread."""

    def __init__(self, cwd: Path, **settings: str):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMBERSTREAM_")}
        env.update({"MEMBERSTREAM_TRITON_REPO": str(ROOT / "triton_repo"), "PYTHONUNBUFFERED": "1"})
        env.update({f"MEMBERSTREAM_{k.upper()}": v for k, v in settings.items()})
        self.cwd, self.lines = cwd, []
        self.popen = subprocess.Popen([sys.executable, "-m", "stream.cli", "up"], cwd=cwd, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.popen.stdout), daemon=True)
        self.reader.start()

    @property
    def pids_path(self) -> Path:
        return self.cwd / ".memberstream" / "stack.json"

    def stack(self) -> dict:
        return json.loads(self.pids_path.read_text())

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def worker(self) -> WorkerProcess:
        url = self.stack()["workers"][0]["web_url"]
        return WorkerProcess(None, int(url.rsplit(":", 1)[1]))

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(60)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


def _gone(pid: int) -> bool:
    stat = _stat(pid)
    return stat is None or stat[0] == "Z"


def _read(bootstrap: str, topic: str) -> list:
    async def collect():
        return [m async for m in messages(bootstrap, topic, True, None, 2.0)]
    return asyncio.run(collect())


def test_up_restarts_a_killed_worker_and_triton_and_stops_when_the_broker_dies(tmp_path):
    up = Up(tmp_path, restart_base_s="0.5", scoring_retry_max_s="1.0")
    try:
        wait_until(lambda: up.pids_path.is_file() and up.said("Ctrl-C stops everything"), 240,
                   "`memberstream up` to start its stack", interval=0.2)
        first = up.stack()
        bootstrap = first["broker"]["url"].removeprefix("kafka://")
        lines = excerpt_lines()
        sender = threading.Thread(target=lambda: asyncio.run(replay(EXCERPT, bootstrap, 4, rate=RATE, as_is=True)))
        sender.start()

        # A worker killed in mid-replay: `up` says so, and starts another on its web port.
        worker = up.worker()
        wait_until(lambda: worker.processed() >= 250, 60, "250 records taken", interval=0.2)
        old_worker = first["workers"][0]["pid"]
        os.kill(old_worker, signal.SIGKILL)
        wait_until(lambda: up.stack()["workers"][0]["pid"] != old_worker, 120, "the worker to be restarted",
                   interval=0.2)
        # Then its last log line, or that its log is empty: a kill can come before it wrote any.
        assert up.said(f"worker-1 (pid {old_worker}) was killed by SIGKILL; its ")
        assert up.said("restarting it in 0.5 s")
        wait_until(lambda: worker.health()[0] == 200, 60, "the new worker's /health", interval=0.2)
        sender.join(60)
        assert not sender.is_alive()

        # Triton killed while the new worker catches up: restarted on its ports, its
        # backend stubs stopped with it.
        old_triton = up.stack()["triton"]["pid"]
        stubs = [pid for pid, _ in _children(old_triton)]
        assert stubs
        os.kill(old_triton, signal.SIGKILL)
        wait_until(lambda: up.stack()["triton"]["pid"] != old_triton, 240, "Triton to be restarted",
                   interval=0.2)
        assert up.said(f"triton (pid {old_triton}) was killed by SIGKILL")
        assert all(_gone(pid) for pid in stubs)

        wait_until(lambda: as_in_a_clean_run(worker, derived().states), 180,
                   "every member's state as in a clean run, scored", interval=0.5)
        alerts = [json.loads(m.value) for m in _read(bootstrap, topics.CHURN_ALERTS)]
        ids = Counter(a["alert_id"] for a in alerts)
        assert set(ids) == {a["alert_id"] for a in derived().of(topics.CHURN_ALERTS)}
        print(f"alerts: {len(alerts)} messages, {len(ids)} distinct ids, "
              f"{sum(n - 1 for n in ids.values())} repeats after the worker's SIGKILL")

        # The broker, memory only, dies: `up` stops the stack and says what was lost.
        now = up.stack()
        os.kill(now["broker"]["pid"], signal.SIGKILL)
        up.popen.wait(60)
        up.reader.join(10)
        text = "".join(up.lines)
        assert up.popen.returncode == 2, text
        assert f"broker (pid {now['broker']['pid']}) was killed by SIGKILL" in text
        assert "in memory only" in text and "are lost with it" in text
        for pid in [now["triton"]["pid"], *(w["pid"] for w in now["workers"])]:
            wait_until(lambda: _gone(pid), 10, f"pid {pid} to end")
        assert not (tmp_path / ".memberstream" / "stack.env").exists()
        assert len(lines) == 927
    finally:
        up.stop()
        print("".join(up.lines))
