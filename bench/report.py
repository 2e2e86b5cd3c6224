"""The results as a table, and bench/RESULTS.md around it."""
from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).parent


def report(r: dict) -> str:
    m = r["machine"]
    lines = [f"memberstream bench  {r['date']}  commit {r['commit']}  {m['cores']} cores  {m['cpu']}"
             f"  GPU {m['gpu'] or 'none'}",
             f"{r['events']:,} events of real data (Online Retail + YooChoose-100k), "
             f"{r['partitions']} partitions, embedded broker (Tansu)", "",
             f"{'measure':<44}{'events/s':>10}{'vs ceiling':>12}{'vs Faust':>10}"]
    for key, label in (("ceiling_eps", "ceiling: raw aiokafka pass-through"),
                       ("faust_trivial_eps", "trivial Faust agent (defaults)"),
                       ("faust_trivial_tuned_eps", "trivial Faust agent (tuned)"),
                       ("pipeline_direct_eps", "memberstream pipeline (no frames, 1 worker)"),
                       ("pipeline_eps", "memberstream pipeline (default, 1 worker)"),
                       ("processor_alone_eps", "processor alone (1 core, no I/O, no model)")):
        v = r[key]
        lines.append(f"{label:<44}{v:>10,.0f}{v / r['ceiling_eps']:>11.1%}"
                     f"{v / r['faust_trivial_eps']:>9.1f}x")
    p = r["pipeline"]
    lines += ["", f"pipeline: {p['events']:,} valid events, {p['dead_lettered']:,} dead-lettered, "
              f"{p['scored_rows']:,} rows scored in {p['triton_requests']:,} "
              f"Triton requests, {p['alerts']:,} alerts, {p['segment_changes']:,} segment changes, "
              f"{p['recommendation_updates']:,} recommendation updates",
              f"in {p['frames']:,} frames; without frames: "
              f"{r['pipeline_direct']['scored_rows']:,} rows scored, "
              f"{r['pipeline_direct']['alerts']:,} alerts (the same decisions)",
              f"checkpoints: {p.get('checkpoint_rows', 0):,} scored by request, "
              f"{p.get('checkpoints_known', 0):,} decided from the member's last scoring; "
              f"{p.get('checkpoint_updates', 0):,} rows also answered the member's pending scoring",
              f"the agent waited, of {p.get('seconds', 0):.2f} s: " + ", ".join(
                  f"{reason} {v:.2f} s" for reason, v in p.get("agent_wait_s", {}).items()), "",
              "latency, event produced -> recommendation update consumed (ms); floor: the same",
              "events through two raw aiokafka relays (the pipeline's two Kafka hops), same run",
              f"{'offered events/s':>17}{'p50':>8}{'p95':>8}{'p99':>8}{'updates measured':>18}"
              f"{'floor p50':>11}{'p95':>8}{'p99':>8}"]
    floor = r.get("latency_floor_ms", {})
    for rate, v in r["latency_ms"].items():
        f = floor.get(rate)
        tail = f"{f['p50']:>11.1f}{f['p95']:>8.1f}{f['p99']:>8.1f}" if f else ""
        lines.append(f"{rate:>17}{v['p50']:>8.1f}{v['p95']:>8.1f}{v['p99']:>8.1f}"
                     f"{v['updates_measured']:>11,} of {v['events']:,}{tail}")
    lines += ["", "latency by stage (ms, p50 / p99), from the records' timestamps: produced -> frame sent",
              "by the batcher -> update sent by the worker -> update consumed",
              f"{'offered events/s':>17}{'to frame':>16}{'to output':>16}{'to arrival':>16}"]
    for rate, st in r.get("latency_stages_ms", {}).items():
        lines.append(f"{rate:>17}" + "".join(f"{v['p50']:>8.1f} /{v['p99']:>6.1f}" for v in st.values()))
    lines += ["", "model: Triton (gRPC, one request at a time) vs the same computation in-process",
              f"{'batch':>6}{'Triton rows/s':>15}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'in-process rows/s':>19}{'p50 ms':>9}{'served/in-proc':>16}"]
    for t in r["triton"]:
        lines.append(f"{t['batch']:>6}{t['triton_rows_per_s']:>15,.0f}{t['triton_p50_ms']:>9.2f}"
                     f"{t['triton_p99_ms']:>9.2f}{t['in_process_rows_per_s']:>19,.0f}"
                     f"{t['in_process_p50_ms']:>9.2f}"
                     f"{t['triton_rows_per_s'] / t['in_process_rows_per_s']:>15.1%}")
    lines += ["", f"state bytes per member after 50 events: {r['state_bytes_per_member']} "
              f"(member {r['state_member']}, with its churn probability and top-10)"]
    return "\n".join(lines)


def results_md(r: dict, table: str) -> str:
    gpu = HERE / "RESULTS-gpu.md"
    gpu_text = gpu.read_text() if gpu.is_file() else (
        "## GPU\n\nNot measured: no session with a GPU has run `make bench-gpu` (python -m bench.gpu) yet.\n")
    return (f"# Benchmark results\n\nWritten by `{r['command']}` (bench/bench.py) on {r['date']}, "
            f"commit {r['commit']}, on {r['machine']['cores']} cores ({r['machine']['cpu']}), "
            f"GPU: {r['machine']['gpu'] or 'none'}. Raw figures: bench/results.json.\n\n"
            f"## CPU, one run, side by side\n\n```\n{table}\n```\n\n{gpu_text}"
            + "".join("\n" + section.rstrip("\n") + "\n" for section in _other_sections(HERE / "RESULTS.md")))


def _other_sections(path: Path) -> list[str]:
    """The sections of an existing RESULTS.md that other scripts and sessions wrote (all but
    the two this one writes), kept as they are."""
    if not path.is_file():
        return []
    sections = re.split(r"(?m)^(?=## )", path.read_text())[1:]
    return [s for s in sections if not s.startswith(("## CPU, one run, side by side", "## GPU"))]
