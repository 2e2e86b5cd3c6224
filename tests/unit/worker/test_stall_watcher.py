"""The stall watcher (stream/worker/stall_watcher.py) on a Worker of in-memory fakes
and a stand-in for Faust's consumer: which partitions it reads directly, and what it
says about them."""
from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import pytest
from faust.types import TP

from stream.worker import stall_watcher
from stream.worker.stall_watcher import StallWatcher
from tests.fixtures.events import event, messages
from tests.fixtures.fakes import FakeRefetcher
from tests.fixtures.workers import fake_worker, run


class _Consumer:
    """Faust's consumer as the watcher reads it: the assignment and, per partition,
    the offset of the last record handed to the stream."""

    def __init__(self, topic: str, partitions) -> None:
        self.topic = topic
        self.tps = {TP(topic, p) for p in partitions}
        self._read_offset: dict[TP, int] = {}
        self.rounds = 0

    def assignment(self):
        self.rounds += 1  # once or twice a round of the watcher
        return self.tps

    def handed(self, partition: int, offset: int) -> None:
        self._read_offset[TP(self.topic, partition)] = offset


class _Reader(FakeRefetcher):
    """The watcher's direct reads; `meanwhile` runs during each (Faust goes on)."""

    def __init__(self, found, meanwhile=lambda: None) -> None:
        super().__init__(found)
        self.meanwhile = meanwhile

    async def fetch(self, partition, start, stop=None, limit=50_000, timeout_s=30.0):
        self.meanwhile()
        return await super().fetch(partition, start, stop, limit, timeout_s)


def _watched(monkeypatch, agent_idle_s: float, meanwhile=None):
    """A worker whose partition 0 was last applied 3 s ago (offset 0; 1 and 2 are in the
    topic, not handed over by Faust), its agent last fed `agent_idle_s` ago, watched
    until the watcher has read the partition directly and gone a few rounds more."""
    monkeypatch.setattr(stall_watcher, "STALL_CHECK_S", 0.01)
    w = fake_worker(frames=False)
    consumer = _Consumer(w.input_topic, [0])
    consumer.handed(0, 0)
    app = SimpleNamespace(consumer=consumer, rebalancing=False,
                          tables=SimpleNamespace(recovery=SimpleNamespace(completed=SimpleNamespace(
                              is_set=lambda: True))))
    watcher = StallWatcher(app, w)
    found = messages(0, 1, [event("m", 1), event("m", 2)])
    watcher.fetcher = _Reader(found, (lambda: meanwhile(consumer, w)) if meanwhile else (lambda: None))
    w.cursor.set(0, 1)
    w.cursor.moved_at[0] -= 3.0
    w.agent_moved_at = time.monotonic() - agent_idle_s

    async def go():
        task = asyncio.ensure_future(watcher._watch(limit=32))
        try:
            while not watcher.fetcher.fetches:
                await asyncio.sleep(0.01)
            read_at = consumer.rounds
            while consumer.rounds < read_at + 6:  # a few more rounds of the watcher
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    run(go())
    return w, watcher


def test_faust_handing_the_partition_over_while_it_is_read_is_left_to_faust(monkeypatch, caplog):
    """A catch-up's uneven start: Faust handed other partitions for 3 s, not this one,
    then handed its next record while the watcher read it: nothing is applied twice
    and nothing is logged."""
    caplog.set_level(logging.INFO, logger=stall_watcher.__name__)
    w, watcher = _watched(monkeypatch, agent_idle_s=0.0, meanwhile=lambda consumer, worker: consumer.handed(0, 2))
    assert watcher.fetcher.fetches[0] == (0, 1, None)
    assert len(watcher.fetcher.fetches) == 1  # no longer behind: not read again
    assert w.cursor.next[0] == 1 and watcher.rescuing == {}
    assert w.processor.totals["gap_filled"] == 0 and w.processor.totals["events"] == 0
    assert caplog.records == []


def test_faust_handing_it_over_and_the_agent_applying_it_while_it_is_read_is_left_to_faust(
        monkeypatch, caplog):
    """As above, and the agent applied offset 1 meanwhile: the cursor stands past what
    Faust handed over, yet the partition is not behind."""
    caplog.set_level(logging.INFO, logger=stall_watcher.__name__)

    def meanwhile(consumer, worker):
        consumer.handed(0, 1)
        worker.cursor.set(0, 2)  # as the agent's intake advances it

    w, watcher = _watched(monkeypatch, agent_idle_s=0.0, meanwhile=meanwhile)
    assert w.cursor.next[0] == 2 and watcher.rescuing == {}
    assert w.processor.totals["gap_filled"] == 0
    assert caplog.records == []


def test_faust_still_behind_after_the_read_is_a_delay_read_directly(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger=stall_watcher.__name__)
    w, watcher = _watched(monkeypatch, agent_idle_s=0.0)
    assert w.cursor.next[0] == 3 and watcher.rescuing == {0: 2}
    assert w.processor.totals["gap_filled"] == 2 and w.processor.totals["events"] == 2
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage().startswith("partition 0: Faust has not handed over offset 1 for 3.0 s; 2 records")


@pytest.mark.parametrize("meanwhile", [None, lambda consumer, worker: consumer.handed(0, 2)])
def test_records_missing_while_the_agent_is_idle_are_left_behind(monkeypatch, caplog, meanwhile):
    """The agent got nothing for 5 s (Faust's queue is empty), yet the partition has
    records past the cursor: Faust skipped them, whatever it says it handed over."""
    caplog.set_level(logging.INFO, logger=stall_watcher.__name__)
    w, watcher = _watched(monkeypatch, agent_idle_s=5.0, meanwhile=meanwhile)
    assert w.cursor.next[0] == 3 and w.processor.totals["gap_filled"] == 2
    # The rescue ends once Faust has handed over the last record read.
    assert watcher.rescuing == ({} if meanwhile else {0: 2})
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == ("partition 0: 2 input records from offset 1 left behind, read directly "
                                   "until Faust hands over offset 2")
