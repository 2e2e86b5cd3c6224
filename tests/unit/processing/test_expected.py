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
        topics.CHURN_ALERTS: 6, topics.SEGMENTS: 59, topics.ANOMALIES: 5, topics.DEAD_LETTER: 22}
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
