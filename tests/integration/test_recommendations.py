"""Recommendations from the stream's own item statistics, cold start, member value and
GET /members/{id}?at=, on a real worker, broker and Triton (the model as shipped)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import orjson
import pytest

from stream.contract import topics
from stream.domain.event_time import DAY_MS, rfc3339

from .conftest import Cluster

pytestmark = pytest.mark.integration
T0 = 1_306_800_000_000  # 2011-05-31T00:00:00Z, after the shipped model's training data
KNOWN = "85123A"  # in the shipped model's vocabulary
NEW = "NEW-ITEM-2011"  # in no vocabulary: first seen in this test
# The defaults (the integration tests' workers run without the item statistics: conftest).
LIVE = {"recommend_related_weight": 1.0, "recommend_trending_weight": 1.0, "recommend_cold_start_events": 3}


def purchase(i: str, member: str, ts: int, item: str, price=2.55) -> bytes:
    return orjson.dumps({"event_id": i, "member_id": member, "type": "purchase", "item_id": item,
                         "ts": rfc3339(ts), "price": price, "quantity": 1, "session_id": f"s-{member}-{ts}"})


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_a_new_item_is_recommended_from_the_stream_and_a_cold_start_is_a_flagged_fallback(broker, triton, tmp_path):
    cluster = Cluster(broker, triton, tmp_path, partitions=2)
    try:
        worker = cluster.start_worker(**LIVE)
        # Six members buy the known item with an item no model has seen, in one order each.
        lines = []
        for n in range(6):
            ts = T0 + n * 3_600_000
            lines += [purchase(f"b{n}-0", f"buyer-{n}", ts, KNOWN), purchase(f"b{n}-1", f"buyer-{n}", ts, NEW)]
        sent = cluster.replay(lines)
        cluster.wait_processed(worker, sent)
        # Then a newcomer buys the known item: one event, a cold start.
        sent += cluster.replay([purchase("c-0", "newcomer", T0 + DAY_MS, KNOWN)])
        cluster.wait_processed(worker, sent)
        recs = [r for r in cluster.read_json(topics.RECOMMENDATIONS, idle_s=1.0) if r["member_id"] == "newcomer"]
        assert len(recs) == 1 and recs[0]["fallback"] is True, recs
        items = {i["item_id"]: i["reason"] for i in recs[0]["items"]}
        assert items[NEW] == "BOUGHT_TOGETHER", items
        assert KNOWN not in items or items[KNOWN] == "BOUGHT_BEFORE"

        # With enough events the model answers (no fallback), the unknown item in the
        # sequence breaking nothing, and the member's value is served.
        more = [purchase(f"c-{d}", "newcomer", T0 + d * DAY_MS, NEW if d % 2 else KNOWN) for d in (2, 3, 4)]
        sent += cluster.replay(more)
        cluster.wait_processed(worker, sent)
        state = worker.member("newcomer")
        assert state["events"] == 4 and not state["recommendations_fallback"] and state["recommendations"]
        assert state["value"]["frequency"] == 4 and 0 < state["value"]["p_alive"] <= 1
        assert state["value"]["expected_purchases_90d"] > 0 and state["value"]["expected_spend_90d"] > 0

        # Scored at a later time: a longer silence, a higher churn probability, a lower P(alive).
        at = rfc3339(T0 + 120 * DAY_MS)
        status, later = _get(f"{worker.web_url}/members/newcomer?at={at}")
        assert status == 200, later
        assessed = later["assessed"]
        assert assessed["event_time"] == at and assessed["recommendations_fallback"] is False
        assert assessed["churn_probability"] > state["churn_probability"]
        assert assessed["value"]["p_alive"] < state["value"]["p_alive"]
        assert assessed["value"]["recency_days"] == 116.0
        assert len(assessed["recommendations"]) == len({r["item_id"] for r in assessed["recommendations"]}) > 0
        status, bad = _get(f"{worker.web_url}/members/newcomer?at=yesterday")
        assert status == 400 and "RFC 3339" in bad["error"]

        # Every segment change carries the member's value at its time.
        segments = [s for s in cluster.read_json(topics.SEGMENTS, idle_s=1.0) if s["member_id"] == "newcomer"]
        assert segments and all(s["value"]["p_alive"] is not None for s in segments)
        assert [s["value"]["frequency"] for s in segments][0] == 1
    finally:
        cluster.stop()
