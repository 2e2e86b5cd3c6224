import numpy as np

from models.datasets import MemberEvent
from models.samples import sequence_rows
from stream.domain.member_state import MemberState, apply_event, model_inputs
from stream.contract.schemas import ShopEvent

T0 = 1_291_191_960_000


def ev(i, type="purchase", ts=None, session=None, price=2.0, qty=1, item=None):
    return ShopEvent(event_id=f"e{i}", member_id="m", type=type, item_id=item or f"i{i % 7}",
                     ts=ts if ts is not None else T0 + i * 3_600_000, session_id=session,
                     price=price, quantity=qty)


def test_rolling_window_keeps_the_newest_events():
    s = MemberState("m", 0)
    for i in range(60):
        apply_event(s, ev(i), 50)
    assert len(s.items) == len(s.times) == len(s.hashes) == 50
    assert s.items[-1] == "i3" and s.last_event_id == "e59" and s.n_events == 60
    assert s.dropped_ts == T0 + 9 * 3_600_000
    assert s.is_duplicate("e59") and s.is_duplicate("e10") and not s.is_duplicate("e9")


def test_visits_group_lines_of_one_order():
    s = MemberState("m", 0)
    apply_event(s, ev(1, session="A", price=2.0, qty=3), 50)
    apply_event(s, ev(2, session="A", price=1.0), 50)
    apply_event(s, ev(3, session="B", price=5.0), 50)
    assert s.purchase_visits == 2
    assert [(v.event_id, v.spend) for v in s.visits] == [("e1", 7.0), ("e3", 5.0)]
    assert s.monetary == 12.0


def test_cart_opens_and_closes():
    s = MemberState("m", 0)
    apply_event(s, ev(1, type="add_to_cart", qty=2), 50)
    apply_event(s, ev(2, type="remove_from_cart"), 50)
    assert s.cart_open == 1
    apply_event(s, ev(3), 50)
    assert s.cart_open == 0


def test_an_older_event_goes_in_at_its_place_in_time_and_the_newest_stays_newest():
    s = MemberState("m", 0)
    apply_event(s, ev(1, ts=T0 + 10_000, item="a"), 50)
    apply_event(s, ev(3, ts=T0 + 30_000, item="c"), 50)
    apply_event(s, ev(2, ts=T0 + 20_000, item="b", type="view"), 50)
    apply_event(s, ev(0, ts=T0, item="z", type="view"), 50)
    apply_event(s, ev(4, ts=T0 + 30_000, item="d", type="view"), 50)  # same time as the newest: after it
    assert s.items == ["z", "a", "b", "c", "d"] and s.times == sorted(s.times)
    assert (s.last_event_id, s.n_events, s.first_ts, s.last_ts) == ("e4", 5, T0, T0 + 30_000)
    assert all(s.is_duplicate(f"e{i}") for i in range(5))
    assert MemberState.from_bytes(s.to_bytes()) == s


def test_an_older_purchase_joins_its_visit_or_counts_as_one_of_its_own():
    s = MemberState("m", 0)
    day = 86_400_000
    apply_event(s, ev(1, ts=T0 + 10 * day, price=5.0), 50)
    apply_event(s, ev(2, ts=T0 + 20 * day, price=7.0), 50)
    apply_event(s, ev(3, ts=T0 + 10 * day + 60_000, price=1.0), 50)  # a line of the first order
    apply_event(s, ev(4, ts=T0 + 5 * day, price=2.0), 50)  # an order of its own, before both
    assert [(v.event_id, v.spend) for v in s.visits] == [("e4", 2.0), ("e1", 6.0), ("e2", 7.0)]
    assert (s.purchase_visits, s.monetary, s.last_event_id) == (3, 15.0, "e2")


def test_an_older_cart_change_counts_only_if_no_purchase_came_after_it():
    s = MemberState("m", 0)
    apply_event(s, ev(1, ts=T0, type="view"), 50)
    apply_event(s, ev(2, ts=T0 + 20_000), 50)  # a purchase
    apply_event(s, ev(3, ts=T0 + 10_000, type="add_to_cart", qty=2), 50)  # before it: bought
    assert s.cart_open == 0
    apply_event(s, ev(4, ts=T0 + 40_000, type="view"), 50)
    apply_event(s, ev(5, ts=T0 + 30_000, type="add_to_cart", qty=2), 50)  # after it: open
    assert s.cart_open == 2


def test_an_event_older_than_a_full_window_leaves_it_at_once():
    s = MemberState("m", 0)
    for i in range(1, 4):
        apply_event(s, ev(i, ts=T0 + i * 1000, type="view"), 3)
    apply_event(s, ev(0, ts=T0, type="view"), 3)
    assert s.items == ["i1", "i2", "i3"] and s.dropped_ts == T0 and s.n_events == 4


def test_state_round_trips_through_bytes():
    s = MemberState("m", 3)
    for i in range(5):
        apply_event(s, ev(i, session=str(i // 2)), 50)
    s.episode, s.stage, s.recommendations = "abc", "active", [("i1", 0.5)]
    assert MemberState.from_bytes(s.to_bytes()) == s


def test_model_inputs_equal_what_training_cut():
    """Serving and training must build the same rows from the same history."""
    times = T0 + np.cumsum([5_400_000 * (i % 4) for i in range(70)])  # gaps 0, 1.5 h, 3 h, 4.5 h
    events = [MemberEvent(f"e{i}", "m", int(t) / 1000, f"i{i % 9}", "purchase")
              for i, t in enumerate(times)]
    s = MemberState("m", 0)
    for e in events:
        apply_event(s, ShopEvent(event_id=e.event_id, member_id="m", type=e.type, item_id=e.item_id,
                                 ts=int(e.ts * 1000)), 50)
    items, types, gaps = model_inputs(s, 50)
    t_items, t_types, t_gaps, silence, _ = sequence_rows(events, len(events), events[-1].ts, 50)
    assert items == t_items and types == t_types and silence == 0
    np.testing.assert_allclose(gaps, t_gaps)


def test_codec_round_trips_long_gaps_nul_strings_and_policy_state():
    s = MemberState("m\x00weird", 2)
    apply_event(s, ev(1, ts=T0, session="A"), 50)
    apply_event(s, ev(2, ts=T0 + 90 * 86_400_000, item="x\x00y"), 50)  # gap past 2**32 ms
    apply_event(s, ev(3, ts=T0 + 90 * 86_400_000 + 1, type="view"), 50)
    s.episode, s.stage, s.tier, s.churned, s.pending_score = "e" * 32, "at_risk", "gold", True, True
    s.churn_probability, s.recommendations = 0.6123, [("x\x00y", 0.123456), ("i2", 0.0)]
    back = MemberState.from_bytes(s.to_bytes())
    assert back == s and back.times[1] - back.times[0] == 90 * 86_400_000


def test_codec_refuses_other_versions():
    import pytest
    with pytest.raises(ValueError, match="codec"):
        MemberState.from_bytes(b'{"m": "old json state"}')


def test_state_after_50_real_events_fits_in_a_kilobyte():
    """Issue 4: at most 1,024 bytes after 50 events, top-10 and churn probability included."""
    from tests.integration.conftest import excerpt_lines
    from stream.domain.parsing import Rejected, parse_event

    states = {}
    for line in excerpt_lines():
        e = parse_event(line, None, 1 << 20)
        if isinstance(e, Rejected):
            continue
        s = states.setdefault(e.member_id, MemberState(e.member_id, 0))
        apply_event(s, e, 50)
        if s.n_events == 50:
            break
    s.churn_probability = 0.4321
    s.recommendations = [(f"item-{i:05d}", 0.012345) for i in range(10)]  # none shared with the sequence
    raw = s.to_bytes()
    assert MemberState.from_bytes(raw) == s
    assert len(raw) <= 1024, len(raw)
