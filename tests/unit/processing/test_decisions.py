"""Batches in flight (stream/processing/decisions.py): each is decided and
published after the one before it, whichever checkpoint request answers first."""
import asyncio

import orjson

from stream.contract import topics
from tests.fixtures.events import DAY_MS, T0, event, messages
from tests.fixtures.fakes import ConstantScorer, FakeSender, FlakyScorer
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
        assert scorer.requests == [1, 2, 2]  # then the factors of the alerts its rows may send
        scorer.release(2)
        await settle()
        assert alerts() == []             # ... and wait for batch 1's decision
        scorer.release(0)
        await settle()
        assert scorer.requests == [1, 2, 2, 1]
        scorer.release(3)
        await w.decisions.drained()

    run(go())
    assert alerts() == ["a", "b"]
    # Its segment changes too, in event order: a's, b's, then c's.
    members = [orjson.loads(v)["member_id"] for _, _, v, _, _ in sender.messages(topics.SEGMENTS)]
    assert members == sorted(members) and members[0] == "a" and members[-1] == "c"
    assert w.commit.inputs == {0: 3}


def _a_checkpoint_batch():
    """a's event, then b's 8 days later: b's passes a's 7-day checkpoint, a scoring row."""
    return messages(0, 0, [event("a", 0, ts=T0), event("b", 0, ts=T0 + 8 * DAY_MS)])


def _alerts(sender):
    return [(orjson.loads(v)["member_id"], orjson.loads(v)["alert_id"])
            for _, _, v, _, _ in sender.messages(topics.CHURN_ALERTS)]


def test_a_batch_whose_checkpoints_cannot_be_scored_is_held_until_triton_answers():
    """Refused, timed out, malformed: each failure holds the batch and it is scored
    again at the breaker's backoff; its alert is the one of a run without the outage."""
    clean_sender = FakeSender()
    clean = fake_worker(frames=False, sender=clean_sender)
    failures = [ConnectionRefusedError("refused"), TimeoutError("deadline"), KeyError("TOP_ITEMS"), "short"]
    scorer, sender = FlakyScorer(failures), FakeSender()
    w = fake_worker(frames=False, scorer=scorer, sender=sender, scoring_retry_base_s=0.01)

    async def go():
        await clean.take(_a_checkpoint_batch())
        await clean.decisions.drained()
        await w.take(_a_checkpoint_batch())
        await settle()
        assert len(w.decisions.held) == 1 and w.health(True).code == 503
        assert _alerts(sender) == [] and w.commit.inputs == {}  # nothing decided, offsets kept
        await w.decisions.drained()

    run(go())
    # The failures, the answer, then the alert's factors.
    assert scorer.calls == len(failures) + 2 and _alerts(sender) == _alerts(clean_sender) != []
    assert w.processor.totals["scoring_failures"] == len(failures)
    assert not w.decisions.held and w.commit.inputs == {0: 2}
    health = w.health(True)
    assert (health.status, health.code) == ("ok", 200)


def test_a_hold_ends_unscored_when_released_and_the_checkpoint_goes_back():
    scorer, sender = FlakyScorer([ConnectionRefusedError("refused")] * 1000), FakeSender()
    w = fake_worker(frames=False, scorer=scorer, sender=sender, scoring_retry_base_s=0.01)

    async def go():
        await w.take(_a_checkpoint_batch())
        await asyncio.sleep(0.1)
        assert len(w.decisions.held) == 1
        w.decisions.release()  # a revocation, or the worker stops
        await asyncio.wait_for(w.decisions.drained(), 1)

    run(go())
    a = w.processor.cache["a"]
    assert _alerts(sender) == [] and a.check_index == 0  # its 7-day checkpoint due again
    assert w.commit.inputs == {0: 2}


def test_a_hold_ends_unscored_after_scoring_hold_s():
    scorer = FlakyScorer([ConnectionRefusedError("refused")] * 1000)
    w = fake_worker(frames=False, scorer=scorer, scoring_retry_base_s=0.01, scoring_hold_s=0.2)

    async def go():
        await w.take(_a_checkpoint_batch())
        await asyncio.wait_for(w.decisions.drained(), 2)

    run(go())
    assert scorer.calls >= 3 and not w.decisions.held and w.commit.inputs == {0: 2}
