"""`memberstream up`'s supervisor: it watches the processes of the stack and
restarts a dead worker or Triton with backoff; the embedded broker's death
ends the stack.

Each death is one line naming the process, how it ended (its exit code or
signal, and what the code means) and its last log line; its log is kept
beside the new one (`worker-1.1.log` for the first life of `worker-1`). A
restart waits `base_s`, doubled per death in a row up to `max_s`; a process
that ran `stable_s` since its last start counts as recovered. Restarting a
process that cannot start again is tried on the same schedule.

The broker is memory only: when it dies, the events not yet processed, the
outputs not yet consumed and the tables' changelogs die with it. Restarting
it would bring up an empty broker and workers that believe they are behind
nothing, so the stack stops instead (StackLost) and says what was lost.
"""
from __future__ import annotations

import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from stream.tools.launcher import LaunchError, Process

# What the worker's own exit codes mean (stream/worker/watchdog.py).
WORKER_EXITS = {3: "the broker was unreachable for too long", 4: "its Faust app crashed",
                5: "it was starting without progress for too long"}


class StackLost(Exception):
    """A process the stack cannot do without died; the message says what was lost."""


@dataclass
class Backoff:
    """Seconds before the next restart: `base_s` doubled per death in a row, at most
    `max_s`; a life of `stable_s` or more starts the count again."""
    base_s: float = 1.0
    max_s: float = 30.0
    stable_s: float = 60.0
    deaths_in_a_row: int = 0

    def next_delay(self, lived_s: float) -> float:
        if lived_s >= self.stable_s:
            self.deaths_in_a_row = 0
        self.deaths_in_a_row += 1
        return min(self.base_s * 2 ** (self.deaths_in_a_row - 1), self.max_s)


@dataclass
class Child:
    """A supervised process. `restart` starts its successor (None: its death ends the
    stack, with `lost` saying what goes with it); `exits`: meanings of its exit codes."""
    name: str
    process: Process
    restart: Optional[Callable[[], Process]] = None
    lost: str = ""
    exits: dict[int, str] = field(default_factory=dict)
    backoff: Backoff = field(default_factory=Backoff)
    started_at: float = 0.0
    restart_at: Optional[float] = None  # a restart is due then
    lives: int = 0  # earlier lives, each with its kept log


def describe_exit(code: int, meanings: dict[int, str]) -> str:
    """`exited with code 3 (the broker ...)`, `was killed by SIGKILL`."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    meaning = meanings.get(code)
    return f"exited with code {code}" + (f" ({meaning})" if meaning else "")


# Terminal control sequences (Faust's spinner writes some) and other control characters.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f]")


def last_log_line(path: Path, tail_bytes: int = 8192) -> str:
    """The last non-blank line of a log, without terminal control sequences, at most
    300 characters ('' if none)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - tail_bytes))
            text = _CONTROL.sub("", fh.read().decode("utf-8", "replace"))
            lines = [line.strip() for line in text.splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    return lines[-1][:300] if lines else ""


def keep_log(path: Path, life: int) -> Path:
    """Move a dead process's log aside (`worker-1.log` -> `worker-1.<life>.log`)."""
    kept = path.with_name(f"{path.stem}.{life}{path.suffix}")
    try:
        path.replace(kept)
    except OSError:
        return path
    return kept


class Supervisor:
    def __init__(self, children: list[Child], say: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic):
        self.children, self.say, self.clock = children, say, clock
        now = clock()
        for child in children:
            child.started_at = now

    def check(self) -> None:
        """One look at every child: a death noticed (and its restart scheduled), a due
        restart done. StackLost when a child without restart died."""
        for child in self.children:
            if child.restart_at is not None:
                if self.clock() >= child.restart_at:
                    self._restart(child)
                continue
            code = child.process.popen.poll()
            if code is not None:
                self._died(child, code)

    def _died(self, child: Child, code: int) -> None:
        proc = child.process
        how = f"{child.name} (pid {proc.pid}) {describe_exit(code, child.exits)}"
        last = last_log_line(proc.log_path)
        said_last = f"; its last log line: {last}" if last else "; its log is empty"
        proc.stop()  # reaped, and its clean-ups run (Triton's backend stubs and shared memory)
        if child.restart is None:
            raise StackLost(f"{how}{said_last}. {child.lost}".rstrip())
        child.lives += 1
        kept = keep_log(proc.log_path, child.lives)
        delay = child.backoff.next_delay(self.clock() - child.started_at)
        child.restart_at = self.clock() + delay
        self.say(f"{how}{said_last} (log kept in {kept}); restarting it in {delay:g} s")

    def _restart(self, child: Child) -> None:
        try:
            child.process = child.restart()
        except LaunchError as exc:
            delay = child.backoff.next_delay(0.0)
            child.restart_at = self.clock() + delay
            self.say(f"{child.name} did not start again: {exc}; next try in {delay:g} s")
            return
        child.restart_at = None
        child.started_at = self.clock()
        self.say(f"{child.name} restarted (pid {child.process.pid})")

    def run(self, interval_s: float = 0.5, sleep: Callable[[float], None] = time.sleep) -> None:
        """Check every `interval_s` until StackLost (or the caller's KeyboardInterrupt)."""
        while True:
            self.check()
            sleep(interval_s)
