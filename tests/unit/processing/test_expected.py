"""The expectations derived from the excerpt (tests/fixtures/expected.py) are the pinned ones
of tests/integration/test_pipeline.py, and do not depend on the batching."""
from stream.contract import topics
from tests.fixtures.expected import FINAL_TOP5_MEMBERS, derive, derived, derived_without_scoring, expected_alert_id
from tests.integration.test_pipeline import EXPECTED_ALERTS, EXPECTED_FINAL_TOP5

# The alert id test_pipeline pins for member 12707 (a literal in its test).
PINNED_12707_ALERT_ID = "d04d84b53474ec081ef1f4ff47534f99"


def test_derived_alerts_and_recommendations_are_the_pinned_ones():
    d = derived()
    assert d.alerts == EXPECTED_ALERTS
    assert d.final_top5() == EXPECTED_FINAL_TOP5
    assert tuple(EXPECTED_FINAL_TOP5) == FINAL_TOP5_MEMBERS
    assert expected_alert_id("12707") == PINNED_12707_ALERT_ID
    # The counts test_pipeline asserts of the worker.
    assert (d.totals["events"], d.totals["dead_lettered"], d.totals["duplicates"], len(d.states)) == (904, 22, 1, 20)
    assert d.totals["alerts"] == len(EXPECTED_ALERTS) == 6


def test_another_batching_and_no_churn_at_checkpoints_decide_the_same():
    """Batches of 1,000 records instead of 50, every checkpoint scored in its batch's
    request instead of taken from the last scoring: the same alerts, segment changes,
    anomalies and dead letters with the same ids, and the same final recommendation lists."""
    d, other = derived(), derive(batch=1000, checkpoints_served=False)

    def final(x):
        return {m: (r["based_on"], [i["item_id"] for i in r["items"]]) for m, r in x.final_recommendations.items()}

    assert other.totals["checkpoints_known"] == 0 < other.totals["checkpoint_rows"]
    assert other.alerts == d.alerts
    assert other.segments == d.segments
    sent = {t: d.ids(t) for t in (topics.CHURN_ALERTS, topics.SEGMENTS, topics.ANOMALIES, topics.DEAD_LETTER)}
    assert {t: len(set(ids)) for t, ids in sent.items()} == {t: len(ids) for t, ids in sent.items()} == {
        topics.CHURN_ALERTS: 6, topics.SEGMENTS: 53, topics.ANOMALIES: 5, topics.DEAD_LETTER: 22}
    assert {t: set(other.ids(t)) for t in sent} == {t: set(ids) for t, ids in sent.items()}
    assert final(other) == final(d) and len(final(d)) == 20
    assert other.states == d.states


def test_without_scoring_no_event_is_lost_and_every_update_is_a_fallback():
    """Every request failing (Triton unreachable): the same states, no alert (the
    checkpoints are never scored), recommendation updates all fallbacks."""
    d, down = derived(), derived_without_scoring()
    assert down.states == d.states
    assert down.alerts == set() and down.totals["scoring_failures"] > 0
    recs = down.of(topics.RECOMMENDATIONS)
    assert recs and all(r["fallback"] for r in recs)
    assert {r["member_id"] for r in recs} == set(d.states)
    assert {s[1] for s in down.segments} <= {"new", "active", "loyal"}


def test_a_backfilled_members_history_gives_at_most_one_alert_and_the_state_of_the_original():
    """Issue 16: a member's history arriving behind the watermark gave an alert per
    event (218 alerts for 21 members). Now each backfilled member is decided once,
    after its history, and ends with the state (in event order) of the member it copies."""
    from collections import Counter

    from tests.fixtures.expected import excerpt_lines
    from tests.fixtures.late import LATE_PREFIX, backfill_lines

    lines, originals = backfill_lines()
    late = derive(lines=excerpt_lines() + lines)
    alerts = Counter(a["member_id"] for a in late.of(topics.CHURN_ALERTS))
    assert all(alerts[LATE_PREFIX + m] <= 1 for m in originals), alerts
    # The backfill's members are decided, not left waiting: one was alerted here.
    assert sum(alerts[LATE_PREFIX + m] for m in originals) >= 1
    assert late.totals["late_events"] == _late_events(excerpt_lines() + lines) > 0.9 * len(lines)
    for m in originals:
        events, last = derived().states[m]
        assert late.states[LATE_PREFIX + m] == (events, LATE_PREFIX + last), m
    # The excerpt's own members decide as before.
    assert sorted(a["alert_id"] for a in late.of(topics.CHURN_ALERTS) if not a["member_id"].startswith("late-")) \
        == sorted(derived().ids(topics.CHURN_ALERTS))


def _late_events(lines: list[bytes], allowed_ms: int = 86_400_000) -> int:
    """Events more than `allowed_ms` behind the largest event time before them on their
    partition (the worker's watermark), counted over the valid lines, once per event id."""
    import orjson

    from stream.contract.schemas import ShopEvent
    from tests.fixtures.expected import partition_for

    watermarks, late, seen = {}, 0, set()
    for line in lines:
        try:
            data = orjson.loads(line)
            ts = ShopEvent.model_validate(data).ts
        except Exception:
            continue
        if (data["member_id"], data["event_id"]) in seen:
            continue
        seen.add((data["member_id"], data["event_id"]))
        p = partition_for(data["member_id"].encode())
        late += ts < watermarks.get(p, 0) - allowed_ms
        watermarks[p] = max(watermarks.get(p, 0), ts)
    return late
