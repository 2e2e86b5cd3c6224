"""A child process started, waited on and stopped by its PID (SIGTERM, then
SIGKILL), also when the caller fails; what every launcher shares."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator


class LaunchError(RuntimeError):
    """A real part did not start; the message says which and why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               proc: "Process | None" = None, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise LaunchError(f"{what} exited with {proc.popen.returncode}; see {proc.log_path}")
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(interval)
    raise LaunchError(f"{what} not ready after {timeout:.0f} s; see "
                      f"{proc.log_path if proc else 'its log'}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except urllib.error.HTTPError:
        return False


def tcp_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path
    on_stop: list[Callable[[], None]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM by PID, SIGKILL after `timeout`; then run the clean-ups."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        for cleanup in self.on_stop:
            cleanup()
        self.on_stop.clear()


def spawn(name: str, argv: list[str], log_dir: Path, env: dict | None = None,
          cwd: Path | None = None) -> Process:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "wb")
    try:
        # A new session: Ctrl-C in the terminal reaches us, and we stop children by PID.
        popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                 start_new_session=True)
    except OSError as exc:
        raise LaunchError(f"cannot start {name}: {exc}") from exc
    finally:
        log.close()
    return Process(name, popen, log_path)


@contextlib.contextmanager
def stopping(*processes: Process) -> Iterator[None]:
    """Stop the given processes (in reverse order) however the block ends."""
    try:
        yield
    finally:
        for proc in reversed(processes):
            proc.stop()
