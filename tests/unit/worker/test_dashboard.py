"""The dashboard's server side (stream/worker/dashboard.py): the bounded feed of
published outputs, the population summary, and the assets it serves."""
import orjson
import pytest

from stream.contract import topics
from stream.domain.member_state import MemberState
from stream.processing.records import Outgoing
from stream.worker.dashboard import Feed, Snapshot, asset, population


def out(topic, **value):
    return Outgoing(topic, b"k", orjson.dumps(value))


def test_the_feed_keeps_the_newest_alerts_first_and_forgets_the_oldest_members():
    feed = Feed(alerts=2, members=2)
    feed.published([out(topics.CHURN_ALERTS, member_id=m, alert_id=m) for m in ("a", "b", "c")])
    feed.published([out(topics.RECOMMENDATIONS, member_id=m, items=[{"item_id": f"i-{m}", "reason": "TRENDING"}])
                    for m in ("a", "b", "c")])
    feed.published([out(topics.DEAD_LETTER, member_id="x")])
    assert [a["member_id"] for a in feed.alerts] == ["c", "b"]
    assert feed.reasons("a") == {} and feed.reasons("c") == {"i-c": "TRENDING"}
    assert feed.outputs == 7


def test_population_counts_stages_tiers_and_bins_the_churn_probability():
    states = []
    for p, stage, tier in ((0.05, "new", None), (0.95, "at_risk", "gold"), (1.0, "churned", "gold"),
                           (None, "new", None), (0.55, "active", "bronze")):
        s = MemberState("m", 0)
        s.churn_probability, s.stage, s.tier = p, stage, tier
        states.append(s)
    got = population(states)
    assert got["stages"] == {"active": 1, "at_risk": 1, "churned": 1, "new": 2}
    assert got["tiers"] == {"bronze": 1, "gold": 2, "none": 2}
    assert got["churn_histogram"] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 2] and got["unscored"] == 1


def test_the_snapshot_is_recomputed_at_most_every_interval():
    calls, now = [], [0.0]
    snap = Snapshot(lambda: calls.append(1) or [], every_s=2.0, clock=lambda: now[0])
    snap.get(), snap.get()
    now[0] = 2.5
    snap.get()
    assert len(calls) == 2


def test_only_the_shipped_assets_are_served():
    text, kind = asset("index.html")
    assert kind == "text/html" and "/dashboard/assets/dashboard.js" in text and "http" not in text.lower().replace(
        "http-equiv", "")  # no CDN, no outside address
    assert asset("dashboard.js")[1] == "application/javascript"
    for name in ("../web.py", "missing.js", "dashboard.py", ".hidden.js"):
        with pytest.raises(KeyError):
            asset(name)
