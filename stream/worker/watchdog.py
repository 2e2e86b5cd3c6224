"""The worker's own process ends when it cannot go on, so that it never
lingers with a dead app: a supervisor (`memberstream up`, Kubernetes, systemd)
restarts it, and the restart takes the input again from the cursor committed
with the states (at-least-once, as after kill -9).

  * the broker has not answered a metadata request for `broker_lost_exit_s`
    (0: wait for it however long): exit EXIT_BROKER_LOST. Until then the
    worker waits for it, `/health` answers 503, and the log has one line
    when it goes and one when it comes back;
  * the Faust app crashed (a task or a service failed for good): exit
    EXIT_APP_CRASHED;
  * the worker has not been ready for `start_stall_exit_s` while the broker
    answers and nothing moved meanwhile (`starting()` gave the same progress
    token: no rebalance began, no changelog record was recovered): exit
    EXIT_START_STALLED. A recovery that goes on, however long, is waited for;
    one that stopped receiving records, or a rebalance that never ends, is not
    (a fresh clone's test run met Faust's recovery of a kept partition that
    received no record for minutes after a join, docs/RELIABILITY.md).

It runs as a task of the event loop that Faust does not own, so a crashed app
does not stop it. It exits with os._exit: the graceful shutdown would wait on
the broker that is gone, and nothing a commit has not written is lost by not
waiting (the input is taken again).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Callable, Hashable, Optional

from stream.kafka.probe import BrokerProbe
from stream.kafka.security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)

EXIT_BROKER_LOST = 3
EXIT_APP_CRASHED = 4
EXIT_START_STALLED = 5
PROBE_S = 1.0
PROBE_TIMEOUT_S = 3.0


class Watchdog:
    def __init__(self, bootstrap: str, broker_lost_exit_s: float, crashed: Callable[[], Optional[BaseException]],
                 exit: Callable[[int], None] = os._exit, security: KafkaSecurity = PLAINTEXT,
                 start_stall_exit_s: float = 0.0) -> None:
        """`crashed`: the app's crash reason (None: running). `starting` (set by whoever
        knows readiness, stream/worker/web.py): None when the worker is ready, else a
        token of its progress that changes whenever it moves."""
        self.probe = BrokerProbe(bootstrap, security)
        self.broker_lost_exit_s, self.crashed, self.exit = broker_lost_exit_s, crashed, exit
        self.start_stall_exit_s = start_stall_exit_s
        self.starting: Callable[[], Optional[Hashable]] = lambda: None
        self.down_since: Optional[float] = None
        self.stalled: Optional[tuple[Hashable, float]] = None  # (progress token, since)

    def broker_down_s(self) -> Optional[float]:
        """Seconds the broker has not answered (None: it answers)."""
        return None if self.down_since is None else time.monotonic() - self.down_since

    async def run(self) -> None:
        while True:
            await asyncio.sleep(PROBE_S)
            reason = self.crashed()
            if reason is not None:
                self._exit(EXIT_APP_CRASHED, f"the Faust app crashed: {reason!r}")
                return
            await self.check_broker()
            if self.down_since is not None and self.broker_lost_exit_s and \
                    time.monotonic() - self.down_since >= self.broker_lost_exit_s:
                self._exit(EXIT_BROKER_LOST, f"broker unreachable for {self.broker_lost_exit_s:.0f} s")
                return
            stalled_s = self.check_start()
            if stalled_s is not None and self.start_stall_exit_s and stalled_s >= self.start_stall_exit_s:
                self._exit(EXIT_START_STALLED, f"not ready for {stalled_s:.0f} s without progress "
                                               f"({self.stalled[0]}) while the broker answers")
                return

    def check_start(self) -> Optional[float]:
        """Seconds the worker has been starting without progress, the broker answering
        (None: ready, or the broker is down: its own rule applies)."""
        token = self.starting()
        now = time.monotonic()
        if token is None or self.down_since is not None:
            self.stalled = None
            return None
        if self.stalled is None or self.stalled[0] != token:
            self.stalled = (token, now)
        return now - self.stalled[1]

    async def check_broker(self) -> None:
        up = await self.probe.reachable(PROBE_TIMEOUT_S)
        now = time.monotonic()
        if up and self.down_since is not None:
            log.warning("broker reachable again after %.0f s", now - self.down_since)
            self.down_since = None
        elif not up and self.down_since is None:
            self.down_since = now
            log.warning("broker unreachable; the worker waits %s", f"{self.broker_lost_exit_s:.0f} s for it, then exits "
                        f"with code {EXIT_BROKER_LOST}" if self.broker_lost_exit_s else "for it")

    def _exit(self, code: int, why: str) -> None:
        log.error("%s: exiting with code %d (the input is taken again from the committed cursor)", why, code)
        logging.shutdown()
        self.exit(code)
