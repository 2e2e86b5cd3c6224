"""`memberstream tail`'s readable lines (stream/tools/tail.py `pretty`)."""
from types import SimpleNamespace

import orjson

from stream.tools.tail import pretty


def msg(topic, value, headers=()):
    return SimpleNamespace(topic=topic, partition=2, offset=7, key=b"m1", headers=list(headers),
                           value=value if isinstance(value, bytes) else orjson.dumps(value))


def test_each_topic_gets_its_line():
    alert = {"event_time": "2011-03-01T10:00:00Z", "member_id": "m1", "churn_probability": 0.734,
             "risk_level": "high", "reasons": [{"code": "INACTIVE_30D"}, {"code": "SPEND_DROP"}],
             "suggested_action": "call", "value": {"p_alive": 0.41, "expected_spend_90d": None}}
    assert pretty(msg("crm.churn-alerts", alert)) == (
        "crm.churn-alerts[2]@7  ALERT 2011-03-01T10:00  member m1  p=0.73 high  INACTIVE_30D,SPEND_DROP  "
        "P(alive) 0.41 spend90 n/a  -> call")
    seg = {"event_time": "2011-03-01T10:00:00Z", "member_id": "m1", "previous_lifecycle_stage": "active",
           "lifecycle_stage": "at_risk", "previous_tier": "gold", "tier": "gold"}
    assert pretty(msg("crm.segments", seg)).endswith("member m1  active -> at_risk, tier gold -> gold")
    dead = pretty(msg("shop.events.dlq", b"{oops", [("error", b"NOT_JSON"), ("error_detail", b"bad")]))
    assert dead == "shop.events.dlq[2]@7  DEAD  NOT_JSON: bad"


def test_a_message_outside_the_contract_is_shown_as_json():
    assert pretty(msg("crm.recommendations", {"member_id": "m1"})) == 'crm.recommendations[2]@7  {"member_id":"m1"}'
