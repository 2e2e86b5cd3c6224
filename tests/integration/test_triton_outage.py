"""A Triton outage under load against the real processes: Triton SIGKILLed in
mid-replay and started again on its ports. The worker holds the batches whose
inactivity checkpoints need scores, says so on /health and in one log line,
and once Triton is back decides them: the alerts, and their ids, are those of
a run without the outage, and every member ends on the model's
recommendations, not the fallback (issue 16: 76 of 163 alerts never came,
256 of 328 members kept fallbacks)."""
from __future__ import annotations

import json
import os
import signal
import threading
import urllib.request

import pytest

from stream.contract import topics
from stream.tools.launcher import start_triton, wait_until
from tests.fixtures.expected import derived

from .conftest import ROOT, Cluster, _children, _stat, excerpt_lines

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

RATE = 150.0  # events/s: the excerpt takes 6 s, Triton is killed after 250 of them


@pytest.fixture
def own_triton(tmp_path):
    """A Triton of this test's own, in a list: the test replaces it by a new one."""
    servers = [start_triton(ROOT / "triton_repo", "memberstream", tmp_path / "triton")]
    yield servers
    for server in servers:
        server.process.stop()


def _alerts(items) -> list[tuple]:
    return sorted((a["member_id"], a["event_time"], tuple(r["code"] for r in a["reasons"]), a["alert_id"])
                  for a in items)


def test_triton_killed_under_load_delays_alerts_but_loses_none(broker, own_triton, tmp_path):
    cluster = Cluster(broker, own_triton[0], tmp_path)
    try:
        worker = cluster.start_worker(scoring_retry_max_s="1.0")
        lines = excerpt_lines()
        replay = threading.Thread(target=cluster.replay, args=(lines, RATE))
        replay.start()
        wait_until(lambda: worker.processed() >= 250, 60, "250 records taken")
        old = own_triton[0]
        stubs = [pid for pid, _ in _children(old.process.pid)]
        assert stubs  # the Python backend's stub of the model
        os.kill(old.process.pid, signal.SIGKILL)  # no goodbye to its clients
        old.process.stop()  # reaps it, stops its stubs, removes its shared memory
        wait_until(lambda: not any(_stat(pid) and _stat(pid)[0] != "Z" for pid in stubs), 10,
                   "the killed server's stubs to be gone")
        wait_until(lambda: worker.metrics()['memberstream_triton_circuit{state="open"}'] == 1, 30,
                   "the worker to see Triton gone")
        replay.join(60)
        assert not replay.is_alive()
        # Checkpoints came due after the kill: their batches wait, and the input behind them.
        wait_until(lambda: worker.metrics()["memberstream_batches_held"] >= 1, 30, "a batch held")
        code, health = worker.health()
        assert (code, health["status"]) == (503, "degraded"), health
        assert any(r.startswith("triton unreachable") for r in health["reasons"]), health
        assert worker.processed() < len(lines)

        own_triton.append(start_triton(ROOT / "triton_repo", "memberstream", tmp_path / "triton-2",
                                       ports=old.ports))
        cluster.wait_processed(worker, len(lines))
        m = worker.metrics()
        assert (m["memberstream_events_total"], m["memberstream_dead_lettered_total"],
                m["memberstream_duplicates_total"]) == (904, 22, 1)
        assert m["memberstream_scoring_failures_total"] >= 1 and m["memberstream_triton_circuit_openings_total"] == 1
        assert (m['memberstream_triton_circuit{state="closed"}'], m["memberstream_batches_held"]) == (1, 0)
        assert _alerts(cluster.read_json(topics.CHURN_ALERTS)) == _alerts(derived().of(topics.CHURN_ALERTS))
        for member in derived().states:
            with urllib.request.urlopen(f"{worker.web_url}/members/{member}") as r:
                state = json.load(r)
            assert not state["recommendations_fallback"] and state["recommendations"], member
        code, health = worker.health()
        assert (code, health["status"], health["reasons"]) == (200, "ok", [])
        log = worker.process.log_path.read_text()
        assert log.count("triton scoring: unavailable") == 1 and log.count("triton scoring: back after") == 1, log
        assert "Traceback" not in log
    finally:
        cluster.stop()
