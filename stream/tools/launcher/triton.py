"""Triton Inference Server: the binary inside nvidia-pytriton, with the Python
backend on the CPU, on free loopback ports (docs/triton.md)."""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sys
import sysconfig
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from stream.tools.launcher.process import LaunchError, Process, free_port, http_ok, spawn, wait_until

SHM = Path("/dev/shm")
TRITON_SHM_PREFIX = "triton_python_backend_shm_region_"


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
    # The header that the model-repository and shared-memory APIs need (restricted_apis);
    # for a test that unloads the model on purpose.
    admin: tuple[str, str] = ("", "")

    @property
    def ports(self) -> tuple[int, int, int]:
        return self.http_port, self.grpc_port, self.metrics_port

    @property
    def grpc_admin_headers(self) -> dict[str, str]:
        """The admin header as a gRPC client sends it (Triton expects this prefix there)."""
        return {f"triton-grpc-protocol-{self.admin[0]}": self.admin[1]}

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


ADMIN_HEADER = "memberstream-admin-key"
RESTRICTED = "model-repository,shared-memory"


def restricted_apis(key: str) -> list[str]:
    return [f"--http-restricted-api={RESTRICTED}:{ADMIN_HEADER}={key}",
            f"--grpc-restricted-protocol={RESTRICTED}:{ADMIN_HEADER}={key}"]


def start_triton(repo: Path, model: str, work_dir: Path, timeout: float = 180.0,
                 config_name: str | None = None, ports: tuple[int, int, int] | None = None) -> Triton:
    """`config_name="gpu"` serves `<model>/configs/gpu.pbtxt` instead of config.pbtxt;
    `ports` (http, grpc, metrics): those of a server this one replaces (default: free ones)."""
    repo = Path(repo).resolve()
    if not (repo / model / "config.pbtxt").is_file():
        raise LaunchError(f"no model '{model}' in {repo} (run `memberstream train` and `export`)")
    if config_name and not (repo / model / "configs" / f"{config_name}.pbtxt").is_file():
        raise LaunchError(f"no configs/{config_name}.pbtxt for model '{model}' in {repo}")
    root = _pytriton_root()
    backends = python_backend_dir(work_dir)
    caches = work_dir / "caches"
    caches.mkdir(parents=True, exist_ok=True)
    http, grpc, metrics = ports or (free_port(), free_port(), free_port())
    admin_key = secrets.token_hex(16)
    before = _shm_regions()
    proc = spawn("triton", [
        str(root / "bin" / "tritonserver"), f"--model-repository={repo}",
        f"--backend-directory={backends}", f"--cache-directory={caches}",
        "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
        f"--http-port={http}", f"--grpc-port={grpc}", f"--metrics-port={metrics}",
        "--model-control-mode=explicit", f"--load-model={model}",
        # Explicit control would let any client load and unload models: that API (and shared
        # memory, which no client here uses) needs a header whose value nobody is told.
        *restricted_apis(admin_key),
        "--disable-auto-complete-config", "--log-verbose=0",
        *([f"--model-config-name={config_name}"] if config_name else []),
    ], work_dir, env=triton_env())

    def remove_own_shm() -> None:
        # Regions left by this server only: those that appeared after it started.
        for name in _shm_regions() - before:
            with contextlib.suppress(OSError):
                (SHM / name).unlink()

    def stop_stubs() -> None:
        # The Python backend's stubs may outlive a server killed with SIGKILL (seen once:
        # one left running for hours; usually they notice and exit). They stay in its
        # process group, which is its PID (a session of its own, launcher/process.py),
        # so the group is stopped by that ID.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    proc.on_stop += [stop_stubs, remove_own_shm]
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{http}/v2/models/{model}/ready"),
                   timeout, "Triton", proc, interval=0.2)
    except BaseException:
        proc.stop()
        raise
    return Triton(proc, http, grpc, metrics, model, (ADMIN_HEADER, admin_key))


