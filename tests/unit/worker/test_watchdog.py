"""The worker's watchdog (stream/worker/watchdog.py): an exit code for a lost
broker or a crashed app, in bounded time; the broker's absence on /health."""
import asyncio

from stream.worker import watchdog as wd
from stream.worker.watchdog import EXIT_APP_CRASHED, EXIT_BROKER_LOST, EXIT_START_STALLED, Watchdog
from tests.fixtures.workers import run


class Probe:
    def __init__(self, answers):
        self.answers = list(answers)

    async def reachable(self, timeout_s):
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def _watchdog(monkeypatch, answers, exit_s, crashed=lambda: None, stall_s=0.0):
    monkeypatch.setattr(wd, "PROBE_S", 0.01)
    exits = []
    dog = Watchdog("unused:9092", exit_s, crashed, exit=exits.append, start_stall_exit_s=stall_s)
    dog.probe = Probe(answers)
    return dog, exits


def test_a_broker_lost_for_longer_than_allowed_ends_the_process(monkeypatch):
    dog, exits = _watchdog(monkeypatch, [True, True, False], exit_s=0.2)
    run(asyncio.wait_for(dog.run(), 5))
    assert exits == [EXIT_BROKER_LOST] and dog.broker_down_s() >= 0.2


def test_a_broker_back_in_time_is_waited_for(monkeypatch):
    dog, exits = _watchdog(monkeypatch, [False] * 5 + [True], exit_s=60)

    async def go():
        task = asyncio.ensure_future(dog.run())
        await asyncio.sleep(0.03)
        assert dog.broker_down_s() is not None  # /health answers 503 meanwhile
        while dog.broker_down_s() is not None:
            await asyncio.sleep(0.01)
        task.cancel()
    run(go())
    assert exits == []


def test_a_crashed_app_ends_the_process(monkeypatch):
    dog, exits = _watchdog(monkeypatch, [True], exit_s=60, crashed=lambda: RuntimeError("batcher failed"))
    run(asyncio.wait_for(dog.run(), 5))
    assert exits == [EXIT_APP_CRASHED]


def test_a_start_that_stops_moving_ends_the_process(monkeypatch):
    """Starting with the same progress token (a recovery that receives no record) for
    longer than allowed, the broker answering: exit 5."""
    dog, exits = _watchdog(monkeypatch, [True], exit_s=60, stall_s=0.2)
    dog.starting = lambda: (3, 41, True, (2, 3))  # rebalances, records left, batcher joined, partitions
    run(asyncio.wait_for(dog.run(), 5))
    assert exits == [EXIT_START_STALLED] and dog.stalled[0] == (3, 41, True, (2, 3))


def test_a_start_that_moves_or_ends_or_waits_for_the_broker_is_waited_for(monkeypatch):
    """Progress (a record recovered, a rebalance) restarts the clock; ready clears it; while
    the broker is down its own rule applies. None of them exits within ten stall limits."""
    for answers, tokens in (([True], iter(range(10 ** 6))),          # a long recovery, moving
                            ([True], iter([(1,)] * 5 + [None] * 10 ** 6)),  # then ready
                            ([False], iter([(1,)] * 10 ** 6))):       # the broker down
        dog, exits = _watchdog(monkeypatch, answers, exit_s=60, stall_s=0.05)
        dog.starting = lambda tokens=tokens: next(tokens)

        async def go():
            task = asyncio.ensure_future(dog.run())
            await asyncio.sleep(0.5)
            task.cancel()
        run(go())
        assert exits == [], answers
