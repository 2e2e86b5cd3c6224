"""The broker stopped under a running worker (issue 16: the app crashed after
40 s while /health said ok for a minute more, the log grew by 200 lines a
second, and the worker never came back). Now: /health answers 503 within
seconds, the log stays short, and the worker exits with EXIT_BROKER_LOST once
the broker has been gone for `broker_lost_exit_s`, for its supervisor to
restart it."""
from __future__ import annotations

import time

import pytest

from stream.tools.launcher import wait_until
from stream.worker.watchdog import EXIT_BROKER_LOST

from .conftest import excerpt_lines

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

LOST_EXIT_S = 8


def test_broker_stopped_under_a_worker_gives_503_then_a_bounded_exit(cluster):
    worker = cluster.start_worker(broker_lost_exit_s=str(LOST_EXIT_S))
    cluster.wait_processed(worker, cluster.replay(excerpt_lines()))
    assert worker.health()[0] == 200
    before = len(worker.process.log_path.read_text().splitlines())

    cluster.broker.process.stop()
    stopped = time.monotonic()
    seen: list[tuple[int, dict]] = []

    def unhealthy() -> bool:
        seen.append(worker.health())
        return seen[-1][0] == 503
    wait_until(unhealthy, 10, "/health to answer 503")
    code, health = seen[-1]
    assert health["status"] == "degraded" and health["reasons"][0].startswith("broker unreachable"), health
    assert time.monotonic() - stopped < 10

    worker.process.popen.wait(LOST_EXIT_S + 20)
    lasted = time.monotonic() - stopped
    assert worker.process.popen.returncode == EXIT_BROKER_LOST
    assert LOST_EXIT_S <= lasted < LOST_EXIT_S + 20
    log = worker.process.log_path.read_text().splitlines()[before:]
    # One line per template per 10 s: what aiokafka and Faust write per failed request.
    assert len(log) < 100, "\n".join(log[-40:])
    assert any("broker unreachable" in line and f"exiting with code {EXIT_BROKER_LOST}" in line for line in log)
