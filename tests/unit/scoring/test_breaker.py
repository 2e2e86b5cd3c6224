"""The scoring circuit breaker (stream/scoring/breaker.py): when requests may go
out, how long it backs off, and that an outage is logged once, not per failure."""
import asyncio
import logging

from stream.scoring.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from tests.fixtures.workers import run


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_failure_opens_the_circuit_and_one_probe_at_a_time_goes_after_its_backoff():
    clock = Clock()
    b = Breaker("triton", base_s=0.5, max_s=4.0, clock=clock)
    assert b.allow() and b.state == CLOSED
    b.failed("refused")
    assert (b.state, b.reason, b.openings) == (OPEN, "refused", 1)
    assert not b.allow()
    backoffs = []
    for _ in range(6):  # the probe fails each time: 0.5, 1, 2, 4, then at most 4 s
        start = clock.t
        while not b.allow():
            clock.t += 0.25
        backoffs.append(clock.t - start)
        assert b.state == HALF_OPEN and not b.allow()  # one probe only
        b.failed("refused")
    assert backoffs == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert b.down_for() == clock.t - 100.0
    clock.t += 4.0
    assert b.allow()
    b.succeeded()
    assert (b.state, b.failures, b.reason, b.down_for(), b.openings) == (CLOSED, 0, None, 0.0, 1)
    b.failed("timeout")  # a new outage: backoff from the start again
    assert b.retry_at - clock.t == 0.5 and b.openings == 2


def test_an_outage_is_logged_once_when_it_begins_and_once_when_it_ends(caplog):
    clock = Clock()
    b = Breaker("triton scoring", base_s=0.5, max_s=30.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="stream.scoring.breaker"):
        for _ in range(200):
            if b.allow():
                b.failed("UNAVAILABLE: connection refused")
            clock.t += 1.0
        while not b.allow():
            clock.t += 1.0
        b.succeeded()
        b.succeeded()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "unavailable (UNAVAILABLE: connection refused)" in lines[0]
    assert lines[1].startswith("triton scoring: back after") and "failed attempts" in lines[1]


def test_an_abandoned_probe_lets_the_next_caller_probe_at_once():
    clock = Clock()
    b = Breaker("triton", clock=clock)
    b.failed("down")
    clock.t += 1.0
    assert b.allow() and not b.allow()
    b.abandoned()
    assert b.state == OPEN and b.allow()


def test_until_retry_waits_for_the_backoff_or_the_probe():
    async def go():
        b = Breaker("triton", base_s=0.05)
        await asyncio.wait_for(b.until_retry(), 1)  # closed: at once
        b.failed("down")
        loop = asyncio.get_running_loop()
        t = loop.time()
        await asyncio.wait_for(b.until_retry(), 1)
        assert loop.time() - t >= 0.04 and b.allow()  # the backoff, then the probe
        waiter = asyncio.ensure_future(b.until_retry())
        await asyncio.sleep(0.1)
        assert not waiter.done()  # half-open: waits for the probe's answer
        b.succeeded()
        await asyncio.wait_for(waiter, 1)
    run(go())
