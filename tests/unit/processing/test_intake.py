"""The input cursor's protocol (stream/processing/intake.py) on in-memory fakes:
every input record applied once, in offset order."""
import pytest

from tests.fixtures.events import DAY_MS, T0, event, messages
from tests.fixtures.fakes import FakeRefetcher
from tests.fixtures.workers import fake_worker, run


def test_redeliveries_below_the_cursor_are_dropped_before_they_are_parsed():
    values = [event("a", n, ts=T0 + n * 60_000) for n in range(5)] + [b"not json"]
    values += [event("a", n, ts=T0 + n * 60_000) for n in range(5, 8)]
    w = fake_worker(frames=False)

    async def go():
        await w.take(messages(0, 0, values[:6]))    # offsets 0-5, the bad one last
        await w.take(messages(0, 2, values[2:9]))   # 2-5 again (a redelivery), then 6-8
        await w.decisions.drained()

    run(go())
    totals = w.processor.totals
    # Dropped by the cursor, not by the member's duplicate check, and not parsed again:
    # the bad record went to the dead-letter topic once.
    assert (totals["redelivered"], totals["duplicates"], totals["dead_lettered"]) == (4, 0, 1)
    assert totals["events"] == 8 and w.cursor.next[0] == 9
    assert w.processor.state("a").n_events == 8


def test_a_gap_is_read_directly_and_applied_before_the_record_after_it():
    values = [event("a", n, item=f"item-{n}", ts=T0 + n * DAY_MS // 24) for n in range(6)]
    log = messages(3, 10, values)              # partition 3, offsets 10-15
    refetcher = FakeRefetcher(log)
    w = fake_worker(frames=False, refetcher=refetcher)

    async def go():
        await w.take([log[4], log[5]])          # Faust skipped offsets 10-13
        await w.decisions.drained()

    run(go())
    assert refetcher.fetches == [(3, 10, 14)]
    assert w.processor.totals["gap_filled"] == 4 and w.processor.totals["events"] == 6
    state = w.processor.state("a")
    # In offset order: the skipped records first. Applied after, they would be late
    # events, clamped in time and behind item-4 and item-5 in the sequence.
    assert state.items == [f"item-{n}" for n in range(6)]
    assert state.last_event_id == "a-5" and w.cursor.next[3] == 16


def test_a_batch_that_fails_to_prepare_leaves_the_cursor_where_it_was():
    """The cursor moves once the batch is prepared: had preparing raised, the agent's
    next try (Faust restarts it) finds the records still ahead of the cursor, not
    behind it as redeliveries to drop."""
    values = [event("a", n, ts=T0 + n * 60_000) for n in range(4)]
    w = fake_worker(frames=False)
    prepare = w.processor.prepare

    def failing(records):
        raise RuntimeError("a bug in pass 1")

    async def go():
        await w.take(messages(0, 0, values[:2]))
        w.processor.prepare = failing
        with pytest.raises(RuntimeError):
            await w.take(messages(0, 2, values[2:]))
        assert w.cursor.next[0] == 2
        w.processor.prepare = prepare
        await w.take(messages(0, 2, values[2:]))   # the records again
        await w.decisions.drained()

    run(go())
    assert w.processor.totals["redelivered"] == 0 and w.processor.totals["events"] == 4
    assert w.cursor.next[0] == 4 and w.processor.state("a").n_events == 4
