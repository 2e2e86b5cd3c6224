"""The ids of the output messages (stream/domain/message_id.py): the same for a message
decided again from the same input, different for different messages. The literals
pin the derivation: ids a consumer has seen must not change under it."""
import hashlib

from stream.domain.dead_letter import dead_letter_headers, dead_letter_id
from stream.domain.member_state import apply_event
from stream.domain.message_id import message_id
from stream.domain.parsing import Rejected
from stream.domain.policies import anomaly_policy, recommendation_policy, segment_policy
from stream.contract.schemas import ShopEvent

from tests.unit.domain.test_policies import T0, member

TIERS = [500.0, 2000.0]


def test_an_id_is_the_tagged_json_list_of_its_parts_hashed():
    assert message_id("segment", "m1", "e0", 1, 0, None, None, "new", "bronze") == hashlib.sha256(
        b'["segment","m1","e0",1,0,null,null,"new","bronze"]').hexdigest()[:32]
    # Ids may hold any character: parts that would join to the same text stay apart.
    assert message_id("t", "a|1", "b") != message_id("t", "a", "1|b")
    assert message_id("t", "a", 1) != message_id("t", "a", "1")


def test_a_segment_change_id_names_its_step_and_the_change():
    change = segment_policy.segment_change(member(), 1, 10.0, T0, 5, TIERS, ("e0", 1, 0))
    assert change["change_id"] == "ae66cb7d9aec8a60051420edc0e4b85f" == segment_policy.change_id(
        "m1", ("e0", 1, 0), (None, None), "new", "bronze")
    # Decided again from the same state and step (a restart re-applying the event): the same id.
    again = segment_policy.segment_change(member(), 1, 10.0, T0, 5, TIERS, ("e0", 1, 0))
    assert again == change
    # The event's checkpoint (same event count, 7 days of silence) is another step.
    checkpoint = segment_policy.segment_change(member(), 1, 10.0, T0, 5, TIERS, ("e0", 1, 7))
    assert checkpoint["change_id"] != change["change_id"]


def test_the_same_change_at_the_same_event_time_from_two_steps_has_two_ids():
    """Late events (clamped to the member's newest event time) can bring a member back from
    at_risk twice at one event time: the two messages read the same but for the id."""
    s = member()
    sent = []
    for n, event_id in ((2, "e1"), (3, "e2")):
        s.episode = "open"  # a checkpoint opened a risk episode
        segment_policy.segment_change(s, 1, 10.0, T0, 5, TIERS, ("e0", n - 1, 7))
        segment_policy.on_member_event(s, started_visit=False)
        sent.append(segment_policy.segment_change(s, 1, 10.0, T0, 5, TIERS, (event_id, n, 0)))
    first, second = sent
    assert (first["previous_lifecycle_stage"], first["lifecycle_stage"]) == ("at_risk", "reactivated")
    assert {**first, "change_id": None} == {**second, "change_id": None}
    assert first["change_id"] == segment_policy.change_id("m1", ("e1", 2, 0), ("at_risk", "bronze"),
                                                          "reactivated", "bronze")
    assert second["change_id"] == segment_policy.change_id("m1", ("e2", 3, 0), ("at_risk", "bronze"),
                                                           "reactivated", "bronze")
    assert first["change_id"] != second["change_id"]


def _orders(s, n, prefix="b"):
    out = []
    for i in range(n):  # orders ten minutes apart
        visit = apply_event(s, ShopEvent(event_id=f"{prefix}{i}", member_id=s.member_id, type="purchase",
                                         item_id="A", ts=T0 + i * 600_000, session_id=f"{prefix}o{i}",
                                         price=10.0), 50)
        out.append(anomaly_policy.on_purchase(s, visit, True, f"{prefix}{i}"))
    return out


def test_an_anomaly_id_names_the_purchase_event_that_raised_it():
    s = member(0)
    burst = _orders(s, 5)
    assert burst[:3] == [None, None, None]
    assert burst[3].anomaly_id == anomaly_policy.anomaly_id("m1", 4, "b3") == "34bcbd61061fab731c712d3ba9230b4d"
    assert burst[4] is None  # rate limited: one order anomaly per member within the hour
    replayed = _orders(member(0), 5)  # the same events applied again to the member as it was
    assert replayed[3].model_dump() == burst[3].model_dump() and replayed[4] is None


def test_a_recommendation_update_id_names_the_state_answered_the_model_and_the_fallback():
    s = member()
    fallback = recommendation_policy.recommendation_update(s, ["a", "b"], [0.0, 0.0], 2, "v", True)
    model = recommendation_policy.recommendation_update(s, ["a", "b"], [0.5, 0.3], 2, "v", False)
    # A fallback answer and then the model's for the same event: two updates, two ids.
    assert fallback["update_id"] == recommendation_policy.update_id("m1", 1, "e0", "v", True)
    assert model["update_id"] == recommendation_policy.update_id("m1", 1, "e0", "v", False)
    assert model["update_id"] == "5ed583b4d8290109fbfc5aa8d62e40eb" != fallback["update_id"]
    # The model's update sent again after a restart (the state as stored before it): the same id.
    assert recommendation_policy.recommendation_update(member(), ["a", "b"], [0.5, 0.3], 2, "v", False) == model
    # Another model version, or the member's next event: another id.
    other = recommendation_policy.recommendation_update(member(), ["a", "b"], [0.5, 0.3], 2, "w", False)
    apply_event(s, ShopEvent(event_id="e1", member_id="m1", type="view", item_id="C", ts=T0 + 1), 50)
    newer = recommendation_policy.recommendation_update(s, ["c", "a"], [0.6, 0.3], 2, "v", False)
    assert len({model["update_id"], other["update_id"], newer["update_id"]}) == 3
    assert newer["update_id"] == recommendation_policy.update_id("m1", 2, "e1", "v", False)


def test_a_dead_letter_id_names_the_source_record():
    headers = dict(dead_letter_headers(Rejected("NOT_JSON", "x"), "shop.events", 2, 17, b"not json"))
    assert headers["dead_letter_id"] == b"fac49fce94cbea6335c6d05cb07cad47"
    assert headers["dead_letter_id"].decode() == dead_letter_id("shop.events", 2, 17, b"not json")
    # The same record dead-lettered again, for whatever reason: the same id.
    again = dict(dead_letter_headers(Rejected("PROCESSING_FAILED", "y"), "shop.events", 2, 17, b"not json"))
    assert again["dead_letter_id"] == headers["dead_letter_id"]
    # Another offset, partition or topic; other bytes at the offset (a recreated topic); no value.
    others = {dead_letter_id("shop.events", 2, 18, b"not json"), dead_letter_id("shop.events", 3, 17, b"not json"),
              dead_letter_id("other", 2, 17, b"not json"), dead_letter_id("shop.events", 2, 17, b"{}"),
              dead_letter_id("shop.events", 2, 17, None), dead_letter_id("shop.events", 2, 17, b"")}
    assert len(others) == 6 and headers["dead_letter_id"].decode() not in others
