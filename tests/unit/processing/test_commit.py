"""The commit protocol (stream/processing/commit.py): outputs delivered, then
member states, then the input offsets they reach, then end markers; a failed
delivery moves no offset."""
import asyncio

import orjson
import pytest

from stream.contract import topics
from stream.domain.member_state import MemberState
from stream.processing import keys
from tests.fixtures.events import DAY_MS, T0, event, messages
from tests.fixtures.fakes import ConstantScorer, FakeSender
from tests.fixtures.workers import CHANGELOG, fake_worker, run, settle


def _worker(sender):
    """Against the embedded broker: its commits end with end markers."""
    return fake_worker(frames=False, embedded_broker=True, sender=sender)


def _changelog_keys(sender):
    return [key for _, key, _, _, _ in sender.messages(CHANGELOG)]


def test_outputs_are_delivered_before_states_and_states_before_input_offsets():
    sender = FakeSender(hold=True)
    w = _worker(sender)

    async def go():
        await w.take(messages(1, 0, [event("a", 0, ts=T0), event("b", 0, ts=T0 + 1), b"{"]))
        await w.decisions.drained()
        outputs = sender.messages()
        assert {m[0] for m in outputs} == {topics.SEGMENTS, topics.DEAD_LETTER}
        commit = asyncio.ensure_future(w.commit.commit())
        await settle()
        assert sender.messages(CHANGELOG) == []  # outputs not delivered yet: no state written
        sender.deliver()                          # step 1 done
        await settle()
        assert _changelog_keys(sender) == [b"a", b"b"]  # step 2
        await settle()
        assert len(_changelog_keys(sender)) == 2  # no input offset before the states are delivered
        sender.deliver()
        await settle()
        assert _changelog_keys(sender) == [b"a", b"b", keys.input_key(1)]  # step 3
        await settle()
        assert len(_changelog_keys(sender)) == 3  # no end marker before it is delivered
        sender.deliver()
        await settle()
        # Step 4, once the changelog records are delivered: the partition's end marker.
        assert _changelog_keys(sender)[3:] == [keys.end_marker_key(1)]
        assert sender.calls[-1][0] == [(CHANGELOG, keys.end_marker_key(1), str(T0 + 1).encode(), 1, None)]
        sender.deliver()
        await commit

    run(go())
    # The input offset with the watermark it stands at: the newest event before it.
    assert w.store[keys.input_key(1)] == f"3 {T0 + 1}".encode() and w.backlog() == 0


def test_a_commit_waits_for_the_batches_in_flight_and_takes_their_states():
    """The cut (step 0) comes once every batch submitted is decided: a batch still
    waiting for its checkpoint scores holds the commit back, then is in it."""
    scorer, sender = ConstantScorer(gated=True), FakeSender()
    w = fake_worker(frames=False, scorer=scorer, sender=sender)

    async def go():
        await w.take(messages(2, 0, [event("a", 0, ts=T0), event("b", 0, ts=T0 + 8 * DAY_MS)]))
        commit = asyncio.ensure_future(w.commit.commit())
        await settle()
        assert scorer.requests == [1] and w.decisions.waiting == 1  # a's checkpoint row, in flight
        assert sender.messages() == [] and not commit.done()
        scorer.release(0)
        await settle()
        # Then the alert's explanation (one variant: a's silence), in flight as well.
        assert scorer.requests == [1, 1] and not commit.done()
        scorer.release(1)
        await commit

    run(go())
    assert _changelog_keys(sender) == [b"a", b"b", keys.input_key(2)]
    assert sender.messages(topics.CHURN_ALERTS) and w.store[keys.input_key(2)] == f"2 {T0 + 8 * DAY_MS}".encode()


def test_a_failed_delivery_does_not_advance_the_offsets():
    sender = FakeSender(hold=True)
    w = _worker(sender)

    async def go():
        await w.take(messages(0, 0, [event("a", 0, ts=T0)]))
        await w.decisions.drained()
        commit = asyncio.ensure_future(w.commit.commit())
        await settle()
        sender.hold = False  # what comes after would be delivered at once
        sender.fail(ConnectionError("broker gone"))
        with pytest.raises(ConnectionError):
            await commit

    run(go())
    # Neither the state nor the input offset reached the changelog: a restart re-applies
    # the record and sends its outputs again.
    assert sender.messages(CHANGELOG) == []


def test_a_restart_after_a_crash_between_states_and_offsets_fires_no_checkpoint_early():
    """Killed once some states of a commit were in the changelog and its input offset was
    not: the restart re-applies from the stored offset under the watermark stored with it.
    Under the newest event of the states instead (b's, 10 days on), a's 7-day checkpoint
    fired before a's own record came again: an alert that no clean run sends (seen in the
    kill -9 fault test)."""
    first = [event("a", 0, ts=T0), event("b", 0, ts=T0)]
    second = [event("a", 1, ts=T0 + 6 * DAY_MS), event("b", 1, ts=T0 + 10 * DAY_MS)]
    sender = FakeSender()
    w = fake_worker(frames=False, sender=sender)

    async def before_the_crash():
        await w.take(messages(0, 0, first))
        await w.commit.commit()
        await w.take(messages(0, 2, second))
        await w.commit.commit()

    run(before_the_crash())
    committed = {key: value for _, key, value, _, _ in sender.messages(CHANGELOG)}
    assert committed[keys.input_key(0)] == f"4 {T0 + 10 * DAY_MS}".encode()
    # b's silence passed 7 days: its alert went out; a came back before its checkpoint.
    assert [orjson.loads(m[2])["member_id"] for m in sender.messages(topics.CHURN_ALERTS)] == ["b"]
    # The crash: of the second commit, only b's state reached the changelog.
    first_commit = len(sender.messages(CHANGELOG)) - 3  # a, b and the input offset
    store = {key: value for _, key, value, _, _ in sender.messages(CHANGELOG)[:first_commit]}
    store[b"b"] = committed[b"b"]
    assert store[keys.input_key(0)] == f"2 {T0}".encode()

    again = FakeSender()
    restarted = fake_worker(frames=False, sender=again, store=store)

    async def after_the_restart():
        await restarted.take(messages(0, 2, second))  # from the stored offset on
        await restarted.commit.commit()

    run(after_the_restart())
    assert again.messages(topics.CHURN_ALERTS) == []
    assert restarted.processor.totals["duplicates"] == 1  # b's record, its state ahead of the offset
    states = {m: MemberState.from_bytes(restarted.store[m.encode()]) for m in ("a", "b")}
    assert [(s.n_events, s.last_ts, s.check_index) for s in states.values()] == [
        (2, T0 + 6 * DAY_MS, 0), (2, T0 + 10 * DAY_MS, 0)]
    assert restarted.store[keys.input_key(0)] == f"4 {T0 + 10 * DAY_MS}".encode()
