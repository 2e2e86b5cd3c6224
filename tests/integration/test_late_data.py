"""Late data against the real processes: after the excerpt, the history of eight of
its members arrives again under new ids, weeks behind the watermark, and then the
watermarks move on (tests/fixtures/late.py). Issue 16: a history arriving late gave
an alert per event (218 alerts for 21 members, 31 for one). Now the worker decides
each backfilled member once, after its history, exactly as the in-process replay
of the same log does, and their states hold their events in event order."""
from __future__ import annotations

from collections import Counter

import pytest

from stream.contract import topics
from tests.fixtures.expected import derive
from tests.fixtures.late import LATE_PREFIX, backfill_lines

from .conftest import excerpt_lines

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def test_a_backfilled_history_is_applied_in_event_order_with_at_most_one_alert(cluster):
    late_lines, originals = backfill_lines()
    lines = excerpt_lines() + late_lines
    expected = derive(lines=lines)
    worker = cluster.start_worker()
    n = cluster.replay(excerpt_lines())
    cluster.wait_processed(worker, n)  # the watermarks first, then the backfill behind them
    cluster.wait_processed(worker, n + cluster.replay(late_lines))

    m = worker.metrics()
    assert m["memberstream_late_events_total"] == expected.totals["late_events"] > 400
    alerts = cluster.read_json(topics.CHURN_ALERTS)
    per_member = Counter(a["member_id"] for a in alerts)
    assert all(per_member[LATE_PREFIX + o] <= 1 for o in originals), per_member
    assert sorted(a["alert_id"] for a in alerts) == sorted(expected.ids(topics.CHURN_ALERTS))
    for original in originals:
        copy, source = worker.member(LATE_PREFIX + original), worker.member(original)
        assert (copy["events"], copy["last_event_id"]) == expected.states[LATE_PREFIX + original]
        assert copy["sequence"] == source["sequence"], original  # event order, as the original's
        assert copy["last_event_time"] == source["last_event_time"]
