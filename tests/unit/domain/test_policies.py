from dataclasses import replace

from hypothesis import given, settings, strategies as st

from stream.domain.event_time import DAY_MS
from stream.domain.inactivity import InactivitySchedule
from stream.domain.item_stats import ItemStats
from stream.domain.member_state import MemberState, apply_event
from stream.domain.policies import anomaly_policy, churn_policy, recommendation_policy, segment_policy
from stream.processing.checkpoints import snapshot as _snapshot
from stream.contract.schemas import ShopEvent

T0 = 1_291_191_960_000
CAUSE = ("e0", 1, 0)  # the step a segment change is decided at (its id's input)


def member(n_orders=1, spends=None):
    s = MemberState("m1", 0)
    spends = spends or [10.0] * n_orders
    for i, spend in enumerate(spends):
        apply_event(s, ShopEvent(event_id=f"e{i}", member_id="m1", type="purchase", item_id="A",
                                 ts=T0 + i * DAY_MS, session_id=f"o{i}", price=spend), 50)
    return s


def check(s, p, days=7):
    return churn_policy.at_checkpoint(s, _snapshot(s), p, days, 0.6, "model@1")


def test_alert_once_per_episode_with_a_deterministic_id():
    s = member()
    assert check(s, 0.5, 7) is None and s.episode is None
    alert = check(s, 0.7, 14)
    assert alert.alert_id == churn_policy.alert_id("m1", "e0") == s.episode
    assert alert.event_time == "2010-12-15T08:26:00.000Z"
    assert [r.code for r in alert.reasons] == ["INACTIVE_14D", "SINGLE_PURCHASE"]
    assert alert.value.recency_days == 14 and alert.value.frequency == 1
    assert (alert.risk_level, alert.churn_probability) == ("medium", 0.7)
    assert check(s, 0.95, 21) is None  # same silence, same episode: nothing new


def test_member_returning_ends_the_episode_and_a_new_silence_alerts_again():
    s = member()
    first = check(s, 0.8, 7)
    segment_policy.on_member_event(s, started_visit=True)
    assert s.episode is None and s.reactivated
    apply_event(s, ShopEvent(event_id="e9", member_id="m1", type="view", item_id="B",
                             ts=T0 + 30 * DAY_MS), 50)
    second = check(s, 0.8, 7)
    assert second.alert_id != first.alert_id == churn_policy.alert_id("m1", "e0")
    assert second.alert_id == churn_policy.alert_id("m1", "e9")


def test_reasons_cart_abandoned_and_spend_drop():
    s = member(spends=[100.0, 120.0, 110.0, 20.0])
    apply_event(s, ShopEvent(event_id="c", member_id="m1", type="add_to_cart", item_id="Z",
                             ts=T0 + 5 * DAY_MS), 50)
    codes = [r.code for r in churn_policy.reasons(s, 21)]
    assert codes == ["INACTIVE_21D", "CART_ABANDONED", "SPEND_DROP"]
    assert churn_policy.suggested_action("high", set(codes), "gold") == "send a cart reminder"


def test_lifecycle_and_tier_changes_are_published_once():
    s = member()
    change = segment_policy.segment_change(s, 1, 10.0, T0, 5, [500.0, 2000.0], CAUSE)
    assert (change["lifecycle_stage"], change["tier"], change["previous_lifecycle_stage"]) == ("new", "bronze", None)
    assert segment_policy.segment_change(s, 1, 10.0, T0, 5, [500.0, 2000.0], CAUSE) is None
    assert segment_policy.segment_change(s, 2, 600.0, T0, 5, [500.0, 2000.0], CAUSE)["tier"] == "silver"
    assert segment_policy.segment_change(s, 5, 600.0, T0, 5, [500.0, 2000.0], CAUSE)["lifecycle_stage"] == "loyal"
    s.churned = True
    assert segment_policy.segment_change(s, 5, 600.0, T0, 5, [500.0, 2000.0], CAUSE)["lifecycle_stage"] == "churned"
    segment_policy.on_member_event(s, started_visit=False)
    assert segment_policy.segment_change(s, 5, 600.0, T0, 5, [500.0, 2000.0], CAUSE)["lifecycle_stage"] == "reactivated"
    segment_policy.on_member_event(s, started_visit=True)
    assert segment_policy.segment_change(s, 6, 600.0, T0, 5, [500.0, 2000.0], CAUSE)["lifecycle_stage"] == "loyal"


def test_recommendations_sent_only_when_the_top_k_changes():
    s = member()
    first = recommendation_policy.recommendation_update(s, ["a", "b", "c"], [0.5, 0.3, 0.1], 2, "v", False)
    assert [(i["item_id"], i["rank"]) for i in first["items"]] == [("a", 1), ("b", 2)]
    assert first["based_on"] == "e0" and not first["fallback"]
    assert recommendation_policy.recommendation_update(s, ["a", "b", "d"], [0.6, 0.2, 0.1], 2, "v", False) is None
    assert recommendation_policy.recommendation_update(s, ["b", "a"], [0.6, 0.2], 2, "v", False) is not None


def _bought(state, item, day, kind="purchase", category=None):
    apply_event(state, ShopEvent(event_id=f"{item}{day}{kind}", member_id=state.member_id, type=kind,
                                 item_id=item, ts=T0 + day * DAY_MS, category=category), 50)


def _stats(*baskets):
    """ItemStats counted from other members' baskets (lists of item ids, each a day)."""
    stats = ItemStats()
    for n, basket in enumerate(baskets):
        other = MemberState(f"o{n}", 0)
        for item in basket:
            _bought(other, item, 0, category=item[0])
            stats.observe_newest(other, other.last_ts, item[0])
    return stats


def test_the_blend_mixes_own_history_items_bought_together_and_the_model():
    s = MemberState("m1", 0)
    for day, item in enumerate(["A1", "A1", "B1"]):
        _bought(s, item, day)
    stats = _stats(["B1", "C1"], ["B1", "C1"], ["B1", "D1"], ["E1", "E1"], ["E1"])
    blend = recommendation_policy.Blend(model=1.0, repeat=1.0, related=1.0, trending=0.1, repeat_share=0.5)
    ranked = recommendation_policy.blend_items(s, ["M1", "C1"], [0.6, 0.3], stats, blend, 4)
    assert [(i, why) for i, _, why in ranked] == [
        ("C1", "BOUGHT_TOGETHER"), ("A1", "BOUGHT_BEFORE"), ("M1", "SEQUENCE_MODEL"), ("B1", "BOUGHT_BEFORE")]
    assert all(0 < score <= 1 for _, score, _ in ranked)
    assert [x for _, x, _ in ranked] == sorted((x for _, x, _ in ranked), reverse=True)
    # At most half the list from the member's own items: the other half is new to them.
    two = recommendation_policy.blend_items(s, ["M1", "C1"], [0.6, 0.3], stats, blend, 2)
    assert [i for i, _, _ in two] == ["C1", "A1"]
    # Only new items, and the trending ones fill the list.
    explore = recommendation_policy.Blend(repeat_share=0.0, trending=0.1)
    assert [i for i, _, _ in recommendation_policy.blend_items(s, [], [], stats, explore, 4)] == [
        "C1", "D1", "E1"]


def test_an_item_unknown_to_the_model_is_recommended_from_the_stream_alone():
    s = MemberState("m1", 0)
    _bought(s, "NEW", 0)
    stats = _stats(["NEW", "NEWER"], ["NEW", "NEWER"], ["NEWER"])
    ranked = recommendation_policy.blend_items(s, [], [], stats, recommendation_policy.Blend(repeat_share=0.0), 3)
    assert [(i, why) for i, _, why in ranked] == [("NEWER", "BOUGHT_TOGETHER")]


def test_business_filters_drop_recent_purchases_items_outside_the_catalogue_and_categories():
    s = MemberState("m1", 0)
    _bought(s, "A1", 0)
    _bought(s, "B1", 20)
    stats = _stats(["A1", "B1", "C1", "D2", "X1"], ["A1", "B1", "C1", "D2"])
    base = recommendation_policy.Blend(repeat_share=1.0)
    items = lambda blend: [i for i, _, _ in recommendation_policy.blend_items(s, [], [], stats, blend, 10)]
    assert set(items(base)) == {"A1", "B1", "C1", "D2", "X1"}
    # B1 was bought 0 days before the newest event, A1 20 days before: a 7-day window drops B1 only.
    assert set(items(replace(base, exclude_bought_within_days=7))) == {"A1", "C1", "D2", "X1"}
    assert set(items(replace(base, catalogue=frozenset({"A1", "C1"})))) == {"A1", "C1"}
    # Categories are the items' first letters here (_stats): "D" and "X" are other categories.
    assert set(items(replace(base, exclude_categories=frozenset({"D"})))) == {"A1", "B1", "C1", "X1"}
    assert set(items(replace(base, include_categories=frozenset({"D", "X"})))) == {"D2", "X1"}


def test_cold_start_is_a_member_with_fewer_events_than_configured():
    s = MemberState("m1", 0)
    blend = recommendation_policy.Blend(cold_start_events=3)
    for day in range(3):
        assert recommendation_policy.cold(s, blend)
        _bought(s, "A1", day)
    assert not recommendation_policy.cold(s, blend)


def test_anomalies_order_burst_and_spend_spike():
    s = MemberState("m1", 0)
    anomalies = []
    for i in range(4):  # four orders within one hour
        visit = apply_event(s, ShopEvent(event_id=f"b{i}", member_id="m1", type="purchase", item_id="A",
                                         ts=T0 + i * 600_000, session_id=f"o{i}", price=10.0), 50)
        anomalies.append(anomaly_policy.on_purchase(s, visit, True, f"b{i}"))
    assert anomalies[:3] == [None, None, None]
    assert anomalies[3].reasons[0].code == "PURCHASE_VELOCITY"
    assert anomalies[3].event_ids == ["b0", "b1", "b2", "b3"]
    visit = apply_event(s, ShopEvent(event_id="big", member_id="m1", type="purchase", item_id="A",
                                     ts=T0 + 10 * DAY_MS, session_id="o9", price=500.0), 50)
    spike = anomaly_policy.on_purchase(s, visit, True, "big")
    assert [r.code for r in spike.reasons] == ["SPEND_SPIKE"] and spike.event_ids == ["big"]
    assert anomaly_policy.on_purchase(s, visit, False, "big2") is None  # flagged once per order


def test_schedule_fires_due_checkpoints_in_order_and_skips_stale_ones():
    sched = InactivitySchedule([7, 14])
    a, b = member(), MemberState("m2", 0)
    apply_event(b, ShopEvent(event_id="x", member_id="m2", type="view", item_id="A", ts=T0 + DAY_MS), 50)
    sched.schedule(a)
    sched.schedule(b)
    sched.advance(0, T0 + 7 * DAY_MS)
    assert sched.pop_due(0) == [(T0 + 7 * DAY_MS, "m1", 0, T0)]
    sched.advance(0, T0 + 30 * DAY_MS)
    due = sched.pop_due(0)
    assert due == [(T0 + 8 * DAY_MS, "m2", 0, T0 + DAY_MS)]
    assert sched.is_current(b, due[0]) and sched.catch_up(b, due[0]) == 0
    b.check_index = 1  # as if m2 acted again / was rescheduled: the old entry is stale
    assert not sched.is_current(b, due[0])
    assert sched.pending(0) == 0


def test_a_late_members_passed_checkpoint_waits_for_the_lateness_then_catches_up_once():
    """A member whose events come 40 days behind the watermark: its 7-day checkpoint
    is past already, so it waits until the watermark has moved on by the allowed
    lateness (1 day), and is then decided at the latest checkpoint reached (30 days)."""
    sched = InactivitySchedule([7, 14, 30, 60], allowed_lateness_ms=DAY_MS)
    sched.advance(0, T0 + 50 * DAY_MS)
    late = MemberState("late", 0)
    apply_event(late, ShopEvent(event_id="x", member_id="late", type="view", item_id="A", ts=T0 + 10 * DAY_MS), 50)
    assert sched.is_late(0, late.last_ts) and not sched.is_late(0, T0 + 49 * DAY_MS + 1)
    sched.schedule(late, late=True)
    sched.advance(0, T0 + 50 * DAY_MS + DAY_MS - 1)
    assert sched.pop_due(0) == []
    sched.advance(0, T0 + 51 * DAY_MS)
    [entry] = sched.pop_due(0)
    assert entry == (T0 + 51 * DAY_MS, "late", 0, T0 + 10 * DAY_MS)
    assert sched.is_current(late, entry) and sched.catch_up(late, entry) == 2  # 30 days, not 60
    # Scheduled by an event on time, a passed checkpoint is due at once (a watermark jump).
    on_time = MemberState("m", 0)
    apply_event(on_time, ShopEvent(event_id="y", member_id="m", type="view", item_id="A",
                                   ts=T0 + 40 * DAY_MS), 50)
    sched.schedule(on_time)
    assert sched.pop_due(0) == [(T0 + 47 * DAY_MS, "m", 0, T0 + 40 * DAY_MS)]


def test_segment_and_recommendation_dicts_are_their_contract_models_byte_for_byte():
    """Both are built as dicts (the hot path): the same JSON as the pydantic models."""
    import orjson

    from stream.processing.outputs import _json
    from stream.contract.schemas import RecommendationUpdate, SegmentChange

    s = member()
    change = segment_policy.segment_change(s, 2, 600.0, T0 + 123, 5, [500.0, 2000.0], CAUSE)
    assert _json(change) == orjson.dumps(SegmentChange(**change).model_dump(mode="json"))
    assert change["event_time"].endswith(".123Z") and change["previous_tier"] is None
    update = recommendation_policy.recommendation_update(s, ["a", "é", "c"], [0.5, 1 / 3, 0.1], 3, "m@1", True)
    assert _json(update) == orjson.dumps(RecommendationUpdate(**update).model_dump(mode="json"))
    assert [i["score"] for i in update["items"]] == [0.5, 0.333333, 0.1]


def _blend_every_candidate(state, model_items, model_scores, stats, blend, k):
    """blend_items as it was before it pruned the related candidates: every candidate
    ranked (the reference the pruned one must equal)."""
    rp = recommendation_policy
    signals = {"model": (blend.model, rp._scaled(dict(zip(model_items, map(float, model_scores))))),
               "repeat": (blend.repeat, rp._scaled(rp.repeat_scores(state, blend.repeat_half_life_days))),
               "related": (blend.related, rp._scaled(stats.related(state.items, blend.related_items))),
               "trending": (blend.trending, rp._scaled(dict(stats.trending(rp._TRENDING_CANDIDATES))))}
    banned = rp._bought_recently(state, blend.exclude_bought_within_days)
    total, best = {}, {}
    for name, (weight, scores) in signals.items():
        if weight <= 0.0:
            continue
        for item, v in scores.items():
            part = weight * v
            total[item] = total.get(item, 0.0) + part
            if part > best.get(item, (-1.0, ""))[0]:
                best[item] = (part, name)
    norm = sum(max(w, 0.0) for w, _ in signals.values()) or 1.0
    ranked = sorted((i for i in total if i not in banned and blend.allows(i, stats)), key=lambda i: (-total[i], i))
    owned = signals["repeat"][1]
    own, new = [i for i in ranked if i in owned], [i for i in ranked if i not in owned]
    n_own = max(round(k * blend.repeat_share), k - len(new)) if blend.repeat_share > 0 else 0
    chosen = set(own[:n_own] + new[:k - min(n_own, len(own))])
    return [(i, round(total[i] / norm, 6), rp.REASONS[best[i][1]]) for i in ranked if i in chosen]


_ITEMS = [f"{c}{n}" for c in "ABC" for n in range(25)]


@settings(max_examples=200, deadline=None)
@given(baskets=st.lists(st.lists(st.sampled_from(_ITEMS), min_size=2, max_size=12), min_size=1, max_size=40),
       own=st.lists(st.tuples(st.sampled_from(_ITEMS), st.integers(0, 60),
                              st.sampled_from(["view", "add_to_cart", "purchase"])), min_size=1, max_size=30),
       model=st.lists(st.sampled_from(_ITEMS), max_size=8, unique=True),
       weights=st.tuples(*[st.sampled_from([0.0, 0.1, 1.0, 2.5])] * 4),
       share=st.sampled_from([0.0, 0.3, 0.5, 1.0]), k=st.integers(1, 12),
       bought_within=st.sampled_from([0.0, 7.0]),
       catalogue=st.one_of(st.none(), st.frozensets(st.sampled_from(_ITEMS), min_size=5)),
       excluded=st.frozensets(st.sampled_from("ABC"), max_size=1))
def test_the_list_is_the_one_ranking_every_candidate_gives(baskets, own, model, weights, share, k,
                                                           bought_within, catalogue, excluded):
    """The blend keeps only the related items that can reach the top k; whatever the
    signals, weights, share and filters, the list equals ranking every candidate."""
    stats = _stats(*baskets)
    s = MemberState("m1", 0)
    for item, day, kind in sorted(own, key=lambda e: e[1]):
        _bought(s, item, day, kind, category=item[0])
    blend = recommendation_policy.Blend(model=weights[0], repeat=weights[1], related=weights[2],
                                        trending=weights[3], repeat_share=share,
                                        exclude_bought_within_days=bought_within, catalogue=catalogue,
                                        exclude_categories=excluded)
    scores = [1.0 / (n + 2) for n in range(len(model))]
    assert recommendation_policy.blend_items(s, model, scores, stats, blend, k) == _blend_every_candidate(
        s, model, scores, stats, blend, k)


def test_an_item_related_to_several_of_the_members_items_takes_one_place():
    """R is bought with both of the member's items, so it comes twice among the related
    candidates; the k best are k items, not R twice."""
    baskets = [["X0", "R0"]] * 5 + [["Y0", "R0"]] * 5 + [["X0", "S0"]] * 3 + [["Y0", "T0"]] * 2
    stats = _stats(*baskets)
    s = MemberState("m1", 0)
    _bought(s, "X0", 0)
    _bought(s, "Y0", 1)
    blend = recommendation_policy.Blend(model=0.0, repeat=0.0, trending=0.0, repeat_share=0.0)
    got = recommendation_policy.blend_items(s, [], [], stats, blend, 2)
    assert [i for i, _, _ in got] == ["R0", "T0"]  # T0 goes with the newer item
    assert got == _blend_every_candidate(s, [], [], stats, blend, 2)


def test_related_items_past_the_filtered_best_still_fill_the_list():
    """The filters refuse the 10 best related items: the next ones are found (the pruned
    candidates are widened until k pass)."""
    baskets = [["X0", f"R{n:02d}"] for n in range(30) for _ in range(30 - n)]  # R00 strongest
    stats = _stats(*baskets)
    s = MemberState("m1", 0)
    _bought(s, "X0", 0)
    blend = recommendation_policy.Blend(model=0.0, repeat=0.0, trending=0.0, repeat_share=0.0,
                                        catalogue=frozenset(f"R{n:02d}" for n in range(10, 30)))
    got = recommendation_policy.blend_items(s, [], [], stats, blend, 3)
    assert [(i, why) for i, _, why in got] == [("R10", "BOUGHT_TOGETHER"), ("R11", "BOUGHT_TOGETHER"),
                                              ("R12", "BOUGHT_TOGETHER")]
    assert got == _blend_every_candidate(s, [], [], stats, blend, 3)


def test_the_trending_signal_follows_each_new_ranking():
    """The trending part of every list is made once per ranking of the item statistics:
    after enough events for a new ranking the lists follow the new best sellers."""
    from stream.domain.item_stats import TRENDING_REFRESH_EVENTS

    stats = _stats(*[["A0", "A1"]] * 5)
    s = MemberState("m1", 0)
    _bought(s, "B0", 0)
    blend = recommendation_policy.Blend(model=0.0, repeat=0.0, related=0.0, trending=1.0, repeat_share=0.0)
    first = recommendation_policy.blend_items(s, [], [], stats, blend, 2)
    assert [i for i, _, _ in first] == ["A0", "A1"]  # equal: by item id
    other = MemberState("o", 0)
    for _ in range(TRENDING_REFRESH_EVENTS):
        _bought(other, "C9", 0)
        stats.observe_newest(other, other.last_ts)
    assert recommendation_policy.blend_items(s, [], [], stats, blend, 2) == _blend_every_candidate(
        s, [], [], stats, blend, 2)
    assert [i for i, _, _ in recommendation_policy.blend_items(s, [], [], stats, blend, 2)] == ["C9", "A0"]
    # Another weight for the same ranking: its own parts.
    half = replace(blend, trending=0.5, related=0.5)
    assert recommendation_policy.blend_items(s, [], [], stats, half, 2) == _blend_every_candidate(
        s, [], [], stats, half, 2)


def test_a_trending_item_paired_after_its_ranking_keeps_its_related_part(monkeypatch):
    """The trending signal is made once per ranking, item numbers included; an item
    trending before it was ever paired, paired before the next ranking, still counts
    its related part (else R, the best related item, ties with it and comes first)."""
    monkeypatch.setattr(recommendation_policy, "_TRENDING_CANDIDATES", 2)
    stats = _stats(*[["M", "R"]] * 5, *[["M"]] * 3, *[["X"]] * 20)  # trending X and M; X not paired
    s = MemberState("m1", 0)
    _bought(s, "M", 1)
    blend = recommendation_policy.Blend(model=0.0, repeat=0.0, related=1.0, trending=1.0, repeat_share=0.0)
    assert [i for i, _, _ in recommendation_policy.blend_items(s, [], [], stats, blend, 1)] == ["R"]
    rankings = stats.rankings
    for n in range(2):  # X bought with M twice: related 0.4 of R's, on top of trending 1.0
        other = MemberState(f"p{n}", 0)
        for item in ("M", "X"):
            _bought(other, item, 0, category=item[0])
            stats.observe_newest(other, other.last_ts, item[0])
    got = recommendation_policy.blend_items(s, [], [], stats, blend, 1)
    assert stats.rankings == rankings  # the same ranking
    assert got == _blend_every_candidate(s, [], [], stats, blend, 1)
    assert [(i, why) for i, _, why in got] == [("X", "TRENDING")]


def test_the_lists_after_an_eviction_read_the_new_item_numbers():
    """An eviction numbers the items kept again: the trending signal made with the old
    numbers is not used after it (else the trending items' related parts are read at
    other items' numbers)."""
    from stream.domain.item_stats import ItemStatsConfig

    stats = ItemStats(ItemStatsConfig(max_items=4))  # evicts past 5 items
    for n, basket in enumerate([["U", "V"]] + [["M", "R"]] * 5 + [["T"]] * 20):
        other = MemberState(f"o{n}", 0)
        for item in basket:
            _bought(other, item, 0)
            stats.observe_newest(other, other.last_ts)
    s = MemberState("m1", 0)
    _bought(s, "M", 1)
    blend = recommendation_policy.Blend(model=0.0, repeat=0.0, related=1.0, trending=1.0, repeat_share=0.0)
    assert recommendation_policy.blend_items(s, [], [], stats, blend, 3) == _blend_every_candidate(
        s, [], [], stats, blend, 3)
    numbered = dict(stats.ids)
    other = MemberState("z", 0)
    for item in ("R", "Z"):  # a sixth item: U and V (numbered first, least popular) go
        _bought(other, item, 0)
        stats.observe_newest(other, other.last_ts)
    assert stats.evictions == 1 and stats.ids != numbered and "U" not in stats.ids
    got = recommendation_policy.blend_items(s, [], [], stats, blend, 3)
    assert got == _blend_every_candidate(s, [], [], stats, blend, 3)
    assert [i for i, _, _ in got] == ["R", "T", "Z"]
