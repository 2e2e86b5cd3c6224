"""Where the pipeline's time goes: py-spy on the worker, its batcher and Triton's model process.

    python -m bench.profile_pipeline      # or: make profile

Same set-up as `memberstream bench`'s pipeline step (bench log pre-loaded, one
worker catching up from the beginning); py-spy samples the worker, the
worker's batcher process and the Triton Python-backend stub for the whole
catch-up. Prints, per process, the
share of samples by where they were (own time, grouped by package) and the
top functions, and writes bench/PROFILE.md.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Optional

from bench.pipeline import pipeline_eps
from bench.provenance import commit, machine
from bench.loaded_stack import loaded_stack, bench_worker_env
from stream.tools.launcher import start_worker, stopping, wait_until
from stream.settings import Settings

HERE = Path(__file__).parent
# Own time by the file a sample's innermost frame is in (py-spy prints paths
# relative to site-packages or the project; the exported model's files are bare).
GROUPS = (("memberstream (stream/, models/, the export)",
           ("stream/", "models/", "network.py", "serving.py", "encoding.py", "model.py")),
          ("waiting in select/epoll (idle)", ("selectors.py",)),
          ("torch", ("torch/",)), ("transformers", ("transformers/",)),
          ("faust + mode", ("faust/", "mode/")), ("aiokafka", ("aiokafka/", "kafka/")),
          ("Triton client and backend utilities, gRPC",
           ("tritonclient/", "grpc/", "triton_python_backend_utils.py")),
          ("pydantic", ("pydantic",)), ("asyncio", ("asyncio/",)), ("logging", ("logging/",)))


def _where(leaf: str) -> str:
    path = leaf[leaf.rfind("(") + 1:].rstrip(")")
    for name, prefixes in GROUPS:
        if any(path.startswith(prefix) for prefix in prefixes):
            return name
    return "other (interpreter, C extensions, stdlib)"


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def batcher_of(worker_pid: int) -> list[int]:
    """The worker's batcher process (a multiprocessing child running spawn_main)."""
    out = []
    for pid in children(worker_pid):
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            pass
    return out


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> Optional[float]:
    """User + system CPU time of one process so far (None: it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_cpu() -> tuple[int, int]:
    """(idle ticks, all ticks) of the whole machine so far."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return ticks[3] + ticks[4], sum(ticks)


def idle_cores(before: tuple[int, int], after: tuple[int, int], cores: int) -> float:
    """Cores the machine left idle between two `machine_cpu` readings."""
    return (after[0] - before[0]) / max(1, after[1] - before[1]) * cores


def cpu_table(before: dict, after: dict, seconds: float, events: int, cores: int) -> str:
    """Per process: cores kept busy and CPU time per event over the catch-up."""
    lines = ["| process | cores busy | CPU µs per event |", "|---|---|---|"]
    total = 0.0
    for name, start in before["procs"].items():
        end = after["procs"].get(name)
        if start is None or end is None:
            continue
        used = end - start
        total += used
        lines.append(f"| {name} | {used / seconds:.2f} | {1e6 * used / events:.1f} |")
    idle = idle_cores(before["idle"], after["idle"], cores)
    lines.append(f"| all of the above | {total / seconds:.2f} | {1e6 * total / events:.1f} |")
    lines.append(f"| machine idle | {idle:.2f} | |")
    return "\n".join(lines) + "\n"


def summarise(raw: Path, title: str, top: int = 15) -> str:
    own: Counter = Counter()
    groups: Counter = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        total += count
        leaf = stack.split(";")[-1]
        own[leaf] += count
        groups[_where(leaf)] += count
    lines = [f"### {title}: {total} samples", "", "| where (own time) | share |", "|---|---|"]
    lines += [f"| {name} | {100 * n / total:.1f} % |" for name, n in groups.most_common()]
    lines += ["", "| top functions (own time) | share |", "|---|---|"]
    lines += [f"| `{leaf[:110]}` | {100 * n / total:.1f} % |" for leaf, n in own.most_common(top)]
    return "\n".join(lines) + "\n"


def main() -> int:
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.is_file():
        print("profile: py-spy is not installed in this environment (pip install -e '.[dev]')",
              file=sys.stderr)
        return 2
    settings = Settings()
    with loaded_stack(settings, "profile") as (lines, broker, triton, work):
        stub = children(triton.process.pid)
        env = bench_worker_env(broker, triton, state_dir=str(work / "state"))
        worker = start_worker(env, work, name="profile-worker")
        with stopping(worker.process):
            spies = []
            wait_until(lambda: batcher_of(worker.process.pid), 60, "the worker's batcher process")
            targets = [("worker", worker.process.pid), *(("batcher", p) for p in batcher_of(worker.process.pid)),
                       *(("triton-model", p) for p in stub[:1])]
            for name, pid in targets:
                spies.append((name, subprocess.Popen(
                    [str(spy), "record", "-p", str(pid), "-r", "250", "-d", "120", "-f", "raw",
                     "--nonblocking", "--threads", "-o", str(work / f"{name}.txt")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)))
            time.sleep(1.0)  # py-spy attached
            groups = {**dict(targets), "triton-server": triton.process.pid, "broker": broker.process.pid,
                      **{f"py-spy ({name})": proc.pid for name, proc in spies}}
            if len(stub) > 1:
                groups.update({f"triton-model-{i}": p for i, p in enumerate(stub[1:], 2)})

            def snapshot() -> dict:
                return {"procs": {name: cpu_seconds(pid) for name, pid in groups.items()},
                        "idle": machine_cpu(), "at": time.monotonic()}

            marks = []
            pipe = pipeline_eps(worker, len(lines), on_first=lambda: marks.append(snapshot()))
            marks.append(snapshot())
            for _, proc in spies:
                proc.send_signal(2)  # SIGINT: py-spy writes what it has
            for _, proc in spies:
                proc.wait(30)
    text = [f"# Where the pipeline's time goes\n\n`python -m bench.profile_pipeline` on "
            f"{time.strftime('%Y-%m-%d', time.gmtime())}, commit {commit()}, {machine()['cores']} cores "
            f"({machine()['cpu']}). One worker catching up on {len(lines):,} events of the bench log: "
            f"{pipe['eps']:,.0f} events/s in this run (py-spy's sampling costs a little).\n"]
    cores, seconds = machine()["cores"], marks[1]["at"] - marks[0]["at"]
    text.append("### CPU by process over the catch-up (from /proc; py-spy's own use listed)\n\n"
                + cpu_table(marks[0], marks[1], seconds, round(pipe["eps"] * seconds), cores))
    for name, _ in spies:
        raw = work / f"{name}.txt"
        if raw.is_file():
            text.append(summarise(raw, name))
    report = "\n".join(text)
    (HERE / "PROFILE.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
