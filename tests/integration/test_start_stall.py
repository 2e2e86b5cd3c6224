"""A worker that cannot become ready while the broker answers. A fresh clone's test run
met Faust's recovery of a partition the worker kept at a join receiving no record for
minutes: /health said `starting` (truthful) and the partitions waited for good. Now the
worker exits with EXIT_START_STALLED once it has been starting for `start_stall_exit_s`
without progress, for its supervisor to restart it. The fault injected: the worker's
batcher, stopped (SIGSTOP) before it joins its group, so the worker never becomes ready."""
from __future__ import annotations

import os
import re
import signal

import pytest

from stream.tools.launcher import start_worker, wait_until
from stream.worker.watchdog import EXIT_START_STALLED

from .conftest import _alive, _children

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

STALL_S = 6


def _batcher(pid: int) -> tuple[int, str] | None:
    """The worker's batcher: its child started by multiprocessing's spawn."""
    for child, started in _children(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    return child, started
        except OSError:
            continue
    return None


def _starting_with(worker, partitions: list[int]) -> bool:
    code, body = worker.health()
    return (code, body["status"], body["partitions"]) == (503, "starting", partitions)


def test_a_worker_that_never_becomes_ready_exits_after_the_stall_limit(cluster):
    worker = start_worker(cluster.env(start_stall_exit_s=str(STALL_S)), cluster.work_dir, "worker-stalled",
                          ready=False)
    stopped: list[tuple[int, str]] = []

    def stop_the_batcher() -> bool:
        batcher = _batcher(worker.process.popen.pid)
        if batcher is not None:
            os.kill(batcher[0], signal.SIGSTOP)  # before its JoinGroup (which alone takes 3 s here)
            stopped.append(batcher)
        return batcher is not None
    try:
        wait_until(stop_the_batcher, 60, "the worker's batcher to start", worker.process, interval=0.02)
        # Faust's side ready (its partitions assigned, the table recovered), the batcher's not.
        wait_until(lambda: _starting_with(worker, [0, 1, 2, 3]), 60, "/health to say starting with every partition",
                   worker.process, 0.2)
        assert worker.process.popen.wait(STALL_S + 60) == EXIT_START_STALLED
        log = worker.process.log_path.read_text()
        said = re.search(rf"not ready for (\d+) s without progress .* exiting with code {EXIT_START_STALLED}", log)
        assert said and int(said[1]) >= STALL_S, log[-2000:]
        assert "Traceback" not in log
    finally:
        worker.process.stop()
        for pid, started in stopped:
            if _alive(pid, started):
                os.kill(pid, signal.SIGKILL)
