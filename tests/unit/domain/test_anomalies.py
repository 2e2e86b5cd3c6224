"""Anomalies a fraud team expects (stream/domain/policies/anomaly_policy.py): a new
member's burst of high-value orders, a sequence the model did not expect of this
member, and the rate limit of each."""
import asyncio
import math

import orjson
import pytest

from stream.contract import topics
from stream.contract.schemas import ShopEvent
from stream.domain.member_state import MemberState, apply_event
from stream.domain.policies import anomaly_policy
from stream.domain.policies.anomaly_policy import OrderSpend, Rules
from stream.processing.processor import MemberProcessor
from stream.processing.records import Record
from stream.settings import Settings

from tests.fixtures.events import DAY_MS, T0
from tests.fixtures.fakes import ConstantScorer

MINUTE = 60_000


def order(s: MemberState, n: int, ts: int, spend: float, high_value=None, rules=Rules()):
    visit = apply_event(s, ShopEvent(event_id=f"e{n}", member_id=s.member_id, type="purchase", item_id="A",
                                     ts=ts, session_id=f"o{n}", price=spend), 50)
    return anomaly_policy.on_purchase(s, visit, True, f"e{n}", rules, high_value)


def test_a_new_members_high_value_orders_within_minutes_are_an_anomaly():
    s = MemberState("new", 0)
    got = [order(s, n, T0 + n * 5 * MINUTE, 900.0, high_value=500.0) for n in range(4)]
    assert got[:2] == [None, None]
    assert [r.code for r in got[2].reasons] == ["NEW_MEMBER_HIGH_VALUE"]
    assert got[2].event_ids == ["e0", "e1", "e2"] and 0.5 < got[2].anomaly_score <= 1
    assert "3 orders of 500.00 or more" in got[2].reasons[0].text and "top 10 %" in got[2].reasons[0].text
    assert got[3] is None  # rate limited: one order anomaly per member within the hour
    # An hour after the flagged order, another burst is raised again.
    later = [order(s, n, T0 + 70 * MINUTE + (n - 4) * 5 * MINUTE, 900.0, high_value=500.0) for n in range(4, 7)]
    assert later[-1] is not None and later[-1].reasons[0].code == "NEW_MEMBER_HIGH_VALUE"


@pytest.mark.parametrize("case", ["old member", "low value", "spread out", "spend unknown"])
def test_no_new_member_anomaly_without_each_of_its_conditions(case):
    s = MemberState("m", 0)
    start = T0
    if case == "old member":  # first seen three days before
        apply_event(s, ShopEvent(event_id="v", member_id="m", type="view", item_id="B", ts=T0), 50)
        start = T0 + 3 * DAY_MS
    spend = 100.0 if case == "low value" else 900.0
    step = 20 * MINUTE if case == "spread out" else 5 * MINUTE
    high = None if case == "spend unknown" else 500.0
    assert [order(s, n, start + n * step, spend, high) for n in range(3)] == [None, None, None]


def test_order_spend_quantiles_are_known_within_a_bin_once_enough_orders_were_seen():
    spend = OrderSpend()
    for x in range(1, 1001):
        spend.observe(float(x))
        assert spend.quantile(0.9, min_orders=1001) is None
    spend.observe(0.0)  # not an order with spend
    assert spend.n == 1000
    assert 900 <= spend.quantile(0.9) <= 900 * 2 ** (1 / 8)
    assert 500 <= spend.quantile(0.5) <= 500 * 2 ** (1 / 8)
    recovered = OrderSpend()
    s = MemberState("m", 0)
    for n in range(3):
        order(s, n, T0 + n * DAY_MS, 10.0 * (n + 1))
    recovered.observe_states([s])
    assert recovered.n == 2  # the closed orders; the newest may grow


def test_an_order_spend_quantile_follows_every_order_counted():
    """A quantile is kept until the next order counts (it is asked on every purchase)."""
    spend = OrderSpend()
    for _ in range(10):
        spend.observe(10.0)
    assert 10 <= spend.quantile(0.5) <= 10 * 2 ** (1 / 8)
    assert spend.quantile(0.5) == spend.quantile(0.5)
    for _ in range(11):
        spend.observe(1000.0)
        spend.quantile(0.5)
    assert 1000 <= spend.quantile(0.5) <= 1000 * 2 ** (1 / 8)  # 11 of 21 orders now at 1,000


def events_against(s: MemberState, items, rules=Rules()):
    out = []
    for n, item in enumerate(items, start=len(s.items)):
        apply_event(s, ShopEvent(event_id=f"v{n}", member_id=s.member_id, type="view", item_id=item,
                                 ts=T0 + n * MINUTE), 50)
        out.append(anomaly_policy.on_event(s, item, f"v{n}", rules))
    return out


def test_a_run_the_model_did_not_expect_of_this_member_is_an_anomaly_once():
    s = MemberState("m", 0)
    assert events_against(s, ["A"]) == [None]  # not scored yet: nothing to compare with
    anomaly_policy.predicted(s, ["A", "B", "C"])
    history = events_against(s, ["A", "B"] * 12)  # 24 events, all predicted
    assert history == [None] * 24
    run = events_against(s, [f"X{n}" for n in range(8)])
    # An anomaly needs a run of five, and its chance under the member's own (smoothed)
    # hit rate, 25/30 by then, is (5/30)^5 = 1.3e-4.
    assert run[:4] == [None] * 4 and all(a is None for a in run[5:])
    anomaly = run[4]
    assert anomaly.reasons[0].code == "UNLIKELY_SEQUENCE" and anomaly.event_ids == ["v29"]
    assert "the last 5 events were all outside the model's top 3" in anomaly.reasons[0].text
    assert anomaly.anomaly_id == anomaly_policy.anomaly_id("m", 30, "v29", "unlikely-sequence")
    assert "of this member's 28 events before (chance 1.3e-04)" in anomaly.reasons[0].text
    assert anomaly.anomaly_score == pytest.approx(-math.log10((5 / 30) ** 5) / 6, abs=1e-4)
    # A hit ends the run; the next run within the hour is not raised again.
    assert events_against(s, ["A"] + [f"Y{n}" for n in range(6)]) == [None] * 7


def test_a_member_the_model_rarely_predicts_raises_no_sequence_anomaly():
    s = MemberState("m", 0)
    anomaly_policy.predicted(s, ["A"])
    got = events_against(s, (["A"] + [f"Z{n}" for n in range(9)]) * 6)  # hit rate 10 %
    assert got == [None] * 60


def test_the_processor_compares_events_with_the_models_last_top_k():
    """End to end in the core: scored after each batch (top-K i1..i3), a member who
    viewed those for 24 events and then five others gets one anomaly."""
    def view(n, item):
        return orjson.dumps({"event_id": f"m-{n}", "member_id": "m", "type": "view", "item_id": item,
                             "ts": T0 + n * MINUTE})

    async def go():
        proc = MemberProcessor(Settings(_env_file=None), {}, ConstantScorer(churn=0.1))
        items = ["i1"] + ["i1", "i2", "i3"] * 8 + [f"other{n}" for n in range(6)]
        anomalies = []
        for n, item in enumerate(items):
            result = await proc.process([Record(0, n, b"m", view(n, item))])
            await proc.score_pending(max_rows=1024)
            anomalies += [orjson.loads(o.value) for o in result.outputs if o.topic == topics.ANOMALIES]
        return anomalies
    [anomaly] = asyncio.new_event_loop().run_until_complete(go())
    assert anomaly["reasons"][0]["code"] == "UNLIKELY_SEQUENCE" and anomaly["event_ids"] == ["m-29"]
