"""The worker's watchdog (stream/worker/watchdog.py): an exit code for a lost
broker or a crashed app, in bounded time; the broker's absence on /health."""
import asyncio

from stream.worker import watchdog as wd
from stream.worker.watchdog import EXIT_APP_CRASHED, EXIT_BROKER_LOST, Watchdog
from tests.fixtures.workers import run


class Probe:
    def __init__(self, answers):
        self.answers = list(answers)

    async def reachable(self, timeout_s):
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def _watchdog(monkeypatch, answers, exit_s, crashed=lambda: None):
    monkeypatch.setattr(wd, "PROBE_S", 0.01)
    exits = []
    dog = Watchdog("unused:9092", exit_s, crashed, exit=exits.append)
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
