"""The supervisor's decisions (stream/tools/supervisor.py) on fake processes and a
fake clock: who is restarted when, what each death says, what ends the stack.
tests/integration/test_supervisor.py kills the real processes of `memberstream up`."""
from __future__ import annotations

import pytest

from stream.tools.launcher import LaunchError, Process
from stream.tools.supervisor import (WORKER_EXITS, Backoff, Child, StackLost, Supervisor, describe_exit,
                                     last_log_line)


class FakePopen:
    _next_pid = 1000

    def __init__(self):
        FakePopen._next_pid += 1
        self.pid = FakePopen._next_pid
        self.returncode = None

    def poll(self):
        return self.returncode


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _process(tmp_path, name: str, log: str = "") -> Process:
    path = tmp_path / f"{name}.log"
    path.write_text(log)
    return Process(name, FakePopen(), path)


def _stack(tmp_path, clock, fail_starts: int = 0):
    """A broker (fatal) and a worker (restarted): the supervisor, the lines it said,
    the worker's starts so far, and its cleanups run."""
    said, starts, cleaned = [], [], []
    worker = _process(tmp_path, "worker-1", "starting\nFaust app crashed: boom\n\n")
    worker.on_stop.append(lambda: cleaned.append(worker.pid))
    pending_failures = [fail_starts]

    def restart() -> Process:
        if pending_failures[0]:
            pending_failures[0] -= 1
            raise LaunchError("worker-1 exited with 1; see worker-1.log")
        proc = _process(tmp_path, "worker-1", "up\n")
        starts.append(proc)
        return proc

    children = [Child("broker", _process(tmp_path, "tansu"), lost="Its topics are lost."),
                Child("worker-1", worker, restart, exits=WORKER_EXITS, backoff=Backoff(1.0, 8.0, 60.0))]
    return Supervisor(children, said.append, clock), said, starts, cleaned


def test_a_dead_worker_is_restarted_after_its_backoff_and_its_death_is_told(tmp_path):
    clock = Clock()
    sup, said, starts, cleaned = _stack(tmp_path, clock)
    worker = sup.children[1].process
    sup.check()
    assert said == [] and starts == []
    clock.now = 5.0
    worker.popen.returncode = 4
    sup.check()
    assert said == [f"worker-1 (pid {worker.pid}) exited with code 4 (its Faust app crashed); its last log "
                    f"line: Faust app crashed: boom (log kept in {tmp_path / 'worker-1.1.log'}); "
                    "restarting it in 1 s"]
    assert cleaned == [worker.pid]  # its clean-ups ran (Triton's: the backend stubs)
    assert (tmp_path / "worker-1.1.log").read_text().startswith("starting")
    clock.now = 5.9
    sup.check()
    assert starts == []
    clock.now = 6.0
    sup.check()
    assert len(starts) == 1 and sup.children[1].process is starts[0]
    assert said[-1] == f"worker-1 restarted (pid {starts[0].pid})"


def test_backoff_doubles_per_death_in_a_row_and_starts_again_after_a_stable_life():
    b = Backoff(base_s=1.0, max_s=8.0, stable_s=60.0)
    assert [b.next_delay(1.0) for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert b.next_delay(60.0) == 1.0
    assert b.next_delay(59.0) == 2.0


def test_deaths_in_a_row_back_off_and_a_failed_start_is_retried(tmp_path):
    clock = Clock()
    sup, said, starts, _ = _stack(tmp_path, clock, fail_starts=1)
    child = sup.children[1]
    child.process.popen.returncode = -9
    sup.check()
    assert said[-1].startswith(f"worker-1 (pid {child.process.pid}) was killed by SIGKILL")
    assert said[-1].endswith("restarting it in 1 s")
    clock.now = 1.0
    sup.check()  # the start fails: tried again 2 s later
    assert starts == [] and said[-1] == ("worker-1 did not start again: worker-1 exited with 1; "
                                         "see worker-1.log; next try in 2 s")
    clock.now = 2.9
    sup.check()
    assert starts == []
    clock.now = 3.0
    sup.check()
    assert len(starts) == 1
    clock.now = 4.0  # dies again 1 s into its life: 4 s this time
    starts[0].popen.returncode = 3
    sup.check()
    assert "exited with code 3 (the broker was unreachable for too long)" in said[-1]
    assert said[-1].endswith(f"(log kept in {tmp_path / 'worker-1.2.log'}); restarting it in 4 s")


def test_the_brokers_death_ends_the_stack_saying_what_was_lost(tmp_path):
    clock = Clock()
    sup, said, starts, _ = _stack(tmp_path, clock)
    broker = sup.children[0].process
    broker.popen.returncode = -9
    with pytest.raises(StackLost) as exc:
        sup.check()
    assert str(exc.value) == f"broker (pid {broker.pid}) was killed by SIGKILL; its log is empty. Its topics are lost."
    assert starts == [] and said == []


def test_exit_descriptions_and_last_log_lines(tmp_path):
    assert describe_exit(0, {}) == "exited with code 0"
    assert describe_exit(1, WORKER_EXITS) == "exited with code 1"
    assert describe_exit(-15, {}) == "was killed by SIGTERM"
    log = tmp_path / "x.log"
    assert last_log_line(log) == ""  # none
    log.write_bytes(b"a\n" * 10000 + b"\xff last \n\n  \n")
    assert last_log_line(log) == "\ufffd last"
    log.write_bytes(b"up\n\x1b[?25l\x1b[?25h[WARNING] gone\x07\n")
    assert last_log_line(log) == "[WARNING] gone"
    log.write_text("x" * 1000)
    assert last_log_line(log) == "x" * 300
