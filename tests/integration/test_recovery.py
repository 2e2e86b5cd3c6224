"""A restarted worker recovers every member from the changelog and goes on
exactly where the first one stopped: nothing lost, nothing counted twice."""
from __future__ import annotations

import json
import urllib.request

import pytest

from stream.contract import topics
from stream.tools.launcher.process import wait_until

from .conftest import excerpt_lines
from .test_pipeline import EXPECTED_ALERTS, _valid_by_member

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def test_restart_recovers_the_members_table(cluster):
    lines = excerpt_lines()
    half = len(lines) // 2
    first = cluster.start_worker()
    n = cluster.replay(lines[:half])
    cluster.wait_processed(first, n)
    first.process.stop()

    second = cluster.start_worker()
    with urllib.request.urlopen(f"{second.web_url}/metrics") as r:
        members = [line for line in r.read().decode().splitlines() if line.startswith("memberstream_members ")]
    valid_first_half, _ = _valid_by_member(lines[:half])
    # Recovered from the changelog before any new event (bookkeeping keys not counted).
    assert int(float(members[0].split()[1])) == len(valid_first_half)

    cluster.replay(lines[half:])
    valid, _ = _valid_by_member(lines)
    # The second worker may re-read records the first did not commit; dedup absorbs them.
    cluster.wait_processed(second, len(lines) - half)
    for member, events in valid.items():
        with urllib.request.urlopen(f"{second.web_url}/members/{member}") as r:
            state = json.load(r)
        assert state["events"] == len(events), member
        assert state["last_event_id"] == events[-1]["event_id"]
    alerts = cluster.read_json(topics.CHURN_ALERTS, idle_s=2.0)
    got = {(a["member_id"], a["event_time"], tuple(r["code"] for r in a["reasons"])) for a in alerts}
    assert got == EXPECTED_ALERTS  # redelivered alerts, if any, carry the same ids


def test_the_batcher_reports_its_consumer_lag_on_shop_events(cluster):
    """The batcher runs in a child process; its lag per shop.events partition reaches
    the worker's /metrics, and falls to 0 once it has framed everything."""
    worker = cluster.start_worker()
    n = cluster.replay(excerpt_lines()[:2000])
    cluster.wait_processed(worker, n)

    def caught_up() -> bool:
        m = worker.metrics()
        lags = {k: v for k, v in m.items() if k.startswith("memberstream_consumer_lag_records{")
                and f'topic="{topics.SHOP_EVENTS}"' in k}
        return len(lags) == 4 and not any(lags.values())

    wait_until(caught_up, 30, "the batcher's lag on all 4 shop.events partitions to read 0", worker.process, 0.2)
    frames = [k for k in worker.metrics() if k.startswith("memberstream_consumer_lag_records{")
              and f'topic="{topics.frames_topic("memberstream")}"' in k]
    assert len(frames) == 4  # the agent's own lag, on the frames topic
