"""Two workers share the partitions: each batcher and each agent takes its part."""
from __future__ import annotations

import json
import urllib.request

import pytest

from stream.tools.launcher import wait_until

from .conftest import excerpt_lines
from .test_pipeline import _valid_by_member

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def test_two_workers_process_the_excerpt_between_them(cluster):
    first = cluster.start_worker()
    second = cluster.start_worker()
    lines = excerpt_lines()
    n = cluster.replay(lines)

    wait_until(lambda: first.processed() + second.processed() >= n
               and all(w.metrics()["memberstream_scoring_backlog"] == 0 for w in (first, second)),
               120, "both workers to take the excerpt", interval=0.2)
    events = [int(w.metrics()["memberstream_events_total"]) for w in (first, second)]
    assert all(events), events  # both took a share
    valid, _ = _valid_by_member(lines)
    assert sum(events) >= 904
    for member, member_events in valid.items():
        with urllib.request.urlopen(f"{first.web_url}/members/{member}") as r:  # routed to the owner
            state = json.load(r)
        assert state["events"] == len(member_events), member
        assert state["recommendations"], member
