"""Batches in flight (stream/processing/decisions.py): each is decided and
published after the one before it, whichever checkpoint request answers first."""
import orjson

from stream.contract import topics
from tests.fixtures.events import DAY_MS, T0, event, messages
from tests.fixtures.fakes import ConstantScorer, FakeSender
from tests.fixtures.workers import fake_worker, run, settle


def test_decisions_go_out_in_event_order_across_batches_in_flight():
    scorer, sender = ConstantScorer(churn=0.9, gated=True), FakeSender()
    w = fake_worker(frames=False, batches_in_flight=3, scorer=scorer, sender=sender)
    first = messages(0, 0, [event("a", 0, ts=T0), event("b", 0, ts=T0 + 8 * DAY_MS)])
    # b's event passes a's 7-day checkpoint: batch 1 asks for a's churn. c's passes b's:
    # batch 2 asks for b's.
    second = messages(0, 2, [event("c", 0, ts=T0 + 16 * DAY_MS)])

    def alerts():
        return [orjson.loads(v)["member_id"] for _, _, v, _, _ in sender.messages(topics.CHURN_ALERTS)]

    async def go():
        await w.take(first)
        await w.take(second)
        await settle()
        assert scorer.requests == [1, 2]  # a's row; then a's 14-day and b's 7-day rows
        scorer.release(1)                 # batch 2's scores come first ...
        await settle()
        assert alerts() == []             # ... and wait for batch 1's decision
        scorer.release(0)
        await w.decisions.drained()

    run(go())
    assert alerts() == ["a", "b"]
    # Its segment changes too, in event order: a's, b's, then c's.
    members = [orjson.loads(v)["member_id"] for _, _, v, _, _ in sender.messages(topics.SEGMENTS)]
    assert members == sorted(members) and members[0] == "a" and members[-1] == "c"
    assert w.commit.inputs == {0: 3}
