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
    lines += ["", *targets(r)]
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
    inside = r.get("latency_inside", {})
    if inside:
        lines += ["", "inside the worker (means over each rate's run, from its /metrics): per agent batch, its",
                  "waits for input and for a slot in flight; per member, pending before a request took it;",
                  "per Triton request, the request and the answered members' lists and outputs; the",
                  "garbage collector's pauses over the run (how many, of them full, their ms summed)",
                  f"{'offered events/s':>17}{'batches':>9}{'records':>9}{'input':>8}{'in flight':>11}"
                  f"{'pending':>9}{'request':>9}{'lists':>8}{'rows/req':>10}{'gc':>6}{'full':>5}{'gc ms':>8}"]
        for rate, v in inside.items():
            lines.append(f"{rate:>17}{v['batches']:>9,}{v['records_per_batch']:>9.1f}{v['agent_input_ms']:>8.1f}"
                         f"{v['agent_in_flight_ms']:>11.1f}{v['pending_ms']:>9.1f}{v['request_ms']:>9.1f}"
                         f"{v['lists_ms']:>8.1f}{v['rows_per_request']:>10.1f}{v.get('gc_pauses', 0):>6,}"
                         f"{v.get('gc_full', 0):>5,}{v.get('gc_ms', 0):>8.1f}")
        lines += ["", "the same runs: per Triton request in the server (ms: all, queued, in the model), and",
                  "the cores each process kept busy (bench: the offering producer and the collector)",
                  f"{'offered events/s':>17}{'server':>8}{'queued':>8}{'model':>7}{'worker':>8}{'batcher':>9}"
                  f"{'broker':>8}{'triton':>8}{'bench':>7}{'idle':>6}"]
        for rate, v in inside.items():
            lines.append(f"{rate:>17}{v.get('server_ms', 0):>8.1f}{v.get('queue_ms', 0):>8.1f}"
                         f"{v.get('model_ms', 0):>7.1f}" + "".join(
                             f"{v.get(f'{name}_cores', 0):>{w}.2f}" for name, w in
                             (("worker", 8), ("batcher", 9), ("broker", 8), ("triton", 8), ("bench", 7),
                              ("idle", 6))))
    lines += ["", "model: Triton (gRPC, one request at a time) vs the same computation in-process",
              f"{'batch':>6}{'Triton rows/s':>15}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'in-process rows/s':>19}{'p50 ms':>9}{'served/in-proc':>16}"]
    for t in r["triton"]:
        lines.append(f"{t['batch']:>6}{t['triton_rows_per_s']:>15,.0f}{t['triton_p50_ms']:>9.2f}"
                     f"{t['triton_p99_ms']:>9.2f}{t['in_process_rows_per_s']:>19,.0f}"
                     f"{t['in_process_p50_ms']:>9.2f}"
                     f"{t['triton_rows_per_s'] / t['in_process_rows_per_s']:>15.1%}")
    inc = r.get("incremental", [])
    if inc:
        lines += ["", f"model in-process, members who added one event since their last scoring ({inc[0]['rows']:,}",
                  "Online Retail members, one row each, at 21-49 events): full encoding (length groups) vs incremental",
                  "(encoder_cache=incremental, warmed with each row's previous one), 1 thread",
                  f"{'batch':>6}{'full rows/s':>13}{'p50 ms':>9}{'incremental rows/s':>20}{'p50 ms':>9}"
                  f"{'speed-up':>10}{'positions':>11}"]
        for t in inc:
            lines.append(f"{t['batch']:>6}{t['full_rows_per_s']:>13,.0f}{t['full_p50_ms']:>9.2f}"
                         f"{t['incremental_rows_per_s']:>20,.0f}{t['incremental_p50_ms']:>9.2f}"
                         f"{t['incremental_rows_per_s'] / t['full_rows_per_s']:>9.2f}x"
                         f"{t['incremental_positions']:>11,}")
    lines += ["", f"state bytes per member after 50 events: {r['state_bytes_per_member']} "
              f"(member {r['state_member']}, with its churn probability and top-10)"]
    return "\n".join(lines)


TARGET_RATE = "2000"  # offered events/s of the latency target


def targets(r: dict) -> list[str]:
    """Issue 20's throughput and latency targets against this run's figures (each
    against a ceiling or floor of the same run)."""
    pipe, faust, ceiling = r["pipeline_eps"], r["faust_trivial_eps"], r["ceiling_eps"]
    rows = [("pipeline / trivial Faust agent", f"{pipe / faust:.1f}x", "at least 10x", pipe >= 10 * faust),
            ("pipeline / ceiling", f"{pipe / ceiling:.1%}", "at least 50 %", pipe >= 0.5 * ceiling)]
    at, floor = r.get("latency_ms", {}).get(TARGET_RATE), r.get("latency_floor_ms", {}).get(TARGET_RATE)
    if at and floor:
        rows += [(f"p50 at {int(TARGET_RATE):,} events/s", f"{at['p50']:.1f} ms",
                  f"at most {floor['p50'] + 10:.1f} (floor + 10)", at["p50"] <= floor["p50"] + 10),
                 (f"p99 at {int(TARGET_RATE):,} events/s", f"{at['p99']:.1f} ms",
                  f"at most {1.5 * floor['p99']:.1f} (floor x 1.5)", at["p99"] <= 1.5 * floor["p99"])]
    return ["targets (issue 20), this run", *(f"  {name:<32}{got:>10}   {want:<28}{'met' if ok else 'short'}"
                                              for name, got, want, ok in rows)]


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
