"""Poison against the real worker: events whose member ids look like the members
table's bookkeeping keys (issue 16: one crashed the agent, and the records after
it on its partition were lost)."""
from __future__ import annotations

import json
import urllib.request

import orjson
import pytest

from stream.contract import topics
from stream.processing import keys

from .conftest import excerpt_lines
from .test_pipeline import EXPECTED_ALERTS, _valid_by_member

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def _internal_looking(n_partitions: int) -> list[bytes]:
    """A valid event for each bookkeeping key, sent with that key as member id and
    Kafka key (the replay keys by member id)."""
    return [orjson.dumps({"event_id": f"poison-{i}", "member_id": key.decode(), "type": "purchase",
                          "item_id": "85123A", "ts": "2011-01-05T10:00:00Z", "price": 1.0})
            for i, key in enumerate(keys.bookkeeping_keys(n_partitions))]


def test_internal_looking_member_ids_are_dead_lettered_and_their_partitions_go_on(cluster):
    lines = excerpt_lines()
    poison = _internal_looking(cluster.partitions)
    mixed = lines[:300] + poison[:4] + lines[300:600] + poison[4:] + lines[600:]
    worker = cluster.start_worker()
    cluster.wait_processed(worker, cluster.replay(mixed))

    valid, bad = _valid_by_member(lines)
    m = worker.metrics()
    assert (m["memberstream_events_total"], m["memberstream_dead_lettered_total"],
            m["memberstream_duplicates_total"], m["memberstream_members"]) == (904, 22 + len(poison), 1, 20)
    assert m["memberstream_processing_failures_total"] == 0
    for member, events in valid.items():  # every event after the poison applied too
        with urllib.request.urlopen(f"{worker.web_url}/members/{member}") as r:
            state = json.load(r)
        assert (state["events"], state["last_event_id"]) == (len(events), events[-1]["event_id"]), member
    dead = cluster.read(topics.DEAD_LETTER, count=22 + len(poison))
    refused = [d for d in dead if d.value in poison]
    assert sorted(d.value for d in refused) == sorted(poison)
    for d in refused:
        headers = dict(d.headers)
        assert headers["error"] == b"INVALID" and headers["error_detail"].startswith(b"member_id"), headers
    alerts = cluster.read_json(topics.CHURN_ALERTS, count=int(m["memberstream_alerts_total"]))
    assert {(a["member_id"], a["event_time"], tuple(r["code"] for r in a["reasons"])) for a in alerts} == EXPECTED_ALERTS
    with urllib.request.urlopen(f"{worker.web_url}/health") as r:
        assert json.load(r)["status"] == "ok"
    assert b"Traceback" not in worker.process.log_path.read_bytes()  # the agent never crashed


def test_unkeyed_and_mis_keyed_events_are_dead_lettered_never_dropped_as_duplicates(cluster):
    """Copies of the excerpt's first valid events under new event ids, sent without a
    key or under another member's key, between the excerpt's own records: each is
    dead-lettered with its reason (before, 6 of 20 unkeyed events were counted as
    duplicates: offsets of other partitions compared with the member's)."""
    lines = excerpt_lines()
    valid, _ = _valid_by_member(lines)
    events = [e for member_events in valid.values() for e in member_events[:2]][:20]
    members = sorted(valid)
    unkeyed = [(None, orjson.dumps({**e, "event_id": f"unkeyed-{i}"})) for i, e in enumerate(events)]
    mis_keyed = [(members[(members.index(e["member_id"]) + 1) % len(members)].encode(),
                  orjson.dumps({**e, "event_id": f"mis-keyed-{i}"})) for i, e in enumerate(events)]
    worker = cluster.start_worker()
    n = cluster.replay(lines[:500])
    n += cluster.send(unkeyed + mis_keyed)
    n += cluster.replay(lines[500:])
    cluster.wait_processed(worker, n)

    m = worker.metrics()
    bad = len(unkeyed) + len(mis_keyed)
    assert (m["memberstream_events_total"], m["memberstream_dead_lettered_total"],
            m["memberstream_duplicates_total"], m["memberstream_members"]) == (904, 22 + bad, 1, 20)
    for member, member_events in valid.items():
        with urllib.request.urlopen(f"{worker.web_url}/members/{member}") as r:
            state = json.load(r)
        assert (state["events"], state["last_event_id"]) == (len(member_events), member_events[-1]["event_id"])
    dead = {d.value: dict(d.headers) for d in cluster.read(topics.DEAD_LETTER, count=22 + bad)}
    assert [dead[v]["error"] for _, v in unkeyed] == [b"NO_KEY"] * len(unkeyed)
    assert [dead[v]["error"] for _, v in mis_keyed] == [b"KEY_MISMATCH"] * len(mis_keyed)
