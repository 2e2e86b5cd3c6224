"""The GPU serving path (issue 4, part 4; issue 20, part 4), for a machine with an NVIDIA GPU.

    python -m bench.gpu                     # or: make bench-gpu
    python -m bench.gpu --device cpu        # the same measures on the CPU: a dry run

Measures, per batch size (1 to 1,024), sequences/s and latency per call of:
  in-process   models/serving.predict on the device, eager network, bf16 and fp32,
               full encoding and incremental (models/encoder_cache.py)
  Triton       the served model, CLIENTS gRPC clients in parallel: configs/gpu.pbtxt as
               shipped (full: the exported network under bf16), and the eager network
               with encoder_cache=incremental (bf16, one instance)
  CPU          the CPU path (fp32, every core), full and incremental: the "20 times"
               reference
Every row is a member who added one event since their previous scoring (real member
sequences of tests/data, the run needs nothing beyond the repository). An
incremental variant first sees every row's previous sequence (untimed, as the served
cache saw the member's last scoring), then the rows are timed; a full variant times
the same rows. No row repeats within a variant (a repeat would be a full hit, or a
copy within a batch): the excerpt's rows are made distinct by shifting their item ids
through the vocabulary. Triton serves a copy of the model repository; its full variant
turns the backend's sequence cache off, so every row runs the encoder as in-process.
Writes bench/results-gpu.json and bench/RESULTS-gpu.md, and puts the table into
bench/RESULTS.md's "## GPU" section (`make bench` folds RESULTS-gpu.md in as well).

`make bench-gpu` builds .venv with the pinned torch, a CPU build: on a machine whose
Python already holds a CUDA build of torch, run `python -m bench.gpu` with that Python
instead, the project's other needs installed beside it (the in-process measures,
`--no-triton`, import numpy, torch, transformers, pydantic, pydantic-settings and
orjson; the served ones also need tritonclient and nvidia-pytriton's server, whose
Python backend stub must match that Python's version).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from bench.exported_model import load_model
from bench.provenance import commit, machine
from bench.triton_table import infer_inputs, model_arrays
from stream.tools.launcher import LaunchError, start_triton, stopping
from stream.settings import Settings

HERE = Path(__file__).parent
SIZES = (1, 16, 64, 256, 1024)
PRECISIONS = ("bf16", "fp32")
ENCODINGS = ("full", "incremental")
CLIENTS = 4
SLOT_BYTES = 64 << 10  # above a cached sequence's bytes (fp32): the caches hold every row of their pool


def calls_for(batch: int) -> int:
    """Calls per variant and size (one of them untimed): enough for a p99 at small batches."""
    return max(33, min(401, 8192 // batch))


def extension_pairs(max_len: int = 50) -> list[tuple[list, list]]:
    """Per member of the tests/data excerpt, every event they added to a window that has not
    slid (a slid window keeps no prefix): (the member's sequence before it, after it), each
    as model inputs. A list of those pairs per member."""
    from stream.domain.member_state import MemberState, apply_event, model_inputs
    from stream.domain.parsing import Rejected, parse_event
    from tests.fixtures.model import EXCERPT

    states: dict[str, MemberState] = {}
    pairs: dict[str, list] = {}
    for line in EXCERPT.read_bytes().splitlines():
        e = parse_event(line, None, 1 << 20)
        if isinstance(e, Rejected):
            continue
        s = states.setdefault(e.member_id, MemberState(e.member_id, 0))
        previous = model_inputs(s, max_len) if 0 < s.n_events < max_len else None
        apply_event(s, e, max_len)
        if previous is not None:
            row = model_inputs(s, max_len)
            kept = max_len - previous[1].count(0)
            # An event placed before a later one (out of order) does not extend the sequence.
            if all(r[max_len - kept - 1:-1] == p[max_len - kept:] for r, p in zip(row, previous)):
                pairs.setdefault(e.member_id, []).append((previous, row))
    return list(pairs.values())


def distinct_pairs(members: list[list], items: list[str], count: int, start: int = 0):
    """`count` (previous rows, rows) from `extension_pairs`, as model input arrays: round
    after round, one pair of each member (round c takes a member's pairs in a fixed
    stride, so that every round mixes short and long sequences), every known item id of
    round c shifted c places along `items` (the vocabulary's). So no two rows are the
    same sequence, and no row is another's previous one (as a member's next pair would
    be). `start`: the first row's place in that order."""
    if start + count > len(members) * len(items):
        raise ValueError(f"{start + count:,} distinct rows asked of {len(members)} members and "
                         f"{len(items):,} items: at most {len(members) * len(items):,}")
    place = {item.encode(): i for i, item in enumerate(items)}
    before, after = [], []
    for i in range(start, start + count):
        c, m = divmod(i, len(members))
        for rows, row in zip((before, after), members[m][(c * 37 + m * 11) % len(members[m])]):
            ids = row[0] if not c else [items[(place[x] + c) % len(items)].encode() if x in place else x
                                        for x in row[0]]
            rows.append((ids, row[1], row[2]))
    return model_arrays(before), model_arrays(after)


def _batches(arrays, batch: int) -> list:
    return [tuple(a[i:i + batch] for a in arrays) for i in range(0, len(arrays[0]), batch)]


def in_process(model, vocab, k: int, pool, batch: int, encoding: str, sync: Callable[[], None]) -> dict:
    """One variant at one batch size over `pool` ((previous, rows), distinct_pairs):
    sequences/s over the timed calls, their p50/p99 ms, and the encoder positions each
    timed row cost (incremental: about 1, the new event alone; full: what its call's
    length groups computed). The pool's last call runs first, untimed: kernels, the
    cache's paths and its scratch are warm before the clock starts."""
    from models import serving
    from models.encoder_cache import EncoderCache

    device = next(model.parameters()).device.type
    cache = EncoderCache(len(pool[0][0]) * SLOT_BYTES) if encoding == "incremental" else None
    warm, calls = _batches(pool[0], batch), _batches(pool[1], batch)
    if cache is not None:
        for b in warm:
            serving.predict(model, vocab, *b, k=k, cache=cache)
    serving.predict(model, vocab, *calls[-1], k=k, cache=cache)
    sync()
    timed = calls[:-1]
    positions = cache.positions if cache is not None else 0
    times = []
    for b in timed:
        t = time.perf_counter()
        serving.predict(model, vocab, *b, k=k, cache=cache)
        sync()
        times.append(time.perf_counter() - t)
    rows = sum(len(b[0]) for b in timed)
    if cache is None:  # each call's length groups, each at its longest row's width
        cost = serving.CALL_COST_POSITIONS.get(device, 1_000_000)
        positions = 0
        for b in timed:
            lengths = (b[1] > 0).sum(axis=1)
            positions += sum(len(g) * max(int(lengths[g].max()), 1) for g in serving.length_groups(lengths, cost))
    else:
        positions = cache.positions - positions
    return {"rows_per_s": rows / sum(times), "p50_ms": 1000 * statistics.median(times),
            "p99_ms": 1000 * float(np.percentile(times, 99)), "positions_per_row": positions / rows}


def served(triton, model_name: str, pool, batch: int, encoding: str, clients: int) -> dict:
    """The served model: `clients` gRPC clients in parallel, each with its share of the
    pool's rows in calls of `batch`; an incremental variant's clients send every row's
    previous sequence first (all of them, untimed). Sequences/s over the timed pass's wall."""
    import tritonclient.grpc as grpc

    shares = [[_batches(tuple(a[c::clients] for a in part), batch) for part in pool] for c in range(clients)]
    conns = [grpc.InferenceServerClient(triton.grpc_url.removeprefix("grpc://")) for _ in range(clients)]
    times: list[float] = []
    lock = threading.Lock()

    def run(c: int, timed: bool) -> None:
        mine = []
        for arrays in shares[c][1 if timed else 0]:
            t = time.perf_counter()
            conns[c].infer(model_name, infer_inputs(arrays))
            mine.append(time.perf_counter() - t)
        if timed:
            with lock:
                times.extend(mine)

    def in_parallel(timed: bool) -> float:
        threads = [threading.Thread(target=run, args=(c, timed)) for c in range(clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.monotonic() - t0

    try:
        conns[0].infer(model_name, infer_inputs(shares[0][0][0]))  # warmed, as in-process
        if encoding == "incremental":
            in_parallel(False)
        wall = in_parallel(True)
    finally:
        for conn in conns:
            conn.close()
    return {"rows_per_s": len(pool[1][0]) / wall, "p50_ms": 1000 * statistics.median(times),
            "p99_ms": 1000 * float(np.percentile(times, 99))}


def configured_copy(repo: Path, model: str, to: Path, config: str = "configs/gpu.pbtxt",
                    instances: int | None = None, **parameters: str) -> Path:
    """A copy of `repo`'s model at `to`, with `parameters` (and the instance count) set in its `config`."""
    if to.exists():
        shutil.rmtree(to)
    shutil.copytree(repo / model, to / model, ignore=shutil.ignore_patterns("__pycache__"))
    path = to / model / config
    text = path.read_text()
    for key, value in parameters.items():
        text = re.sub(r'parameters \{ key: "%s" value: \{ string_value: "[^"]*" \} \}\n' % key, "", text)
        text += f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}\n'
    if instances is not None:
        text = re.sub(r"(instance_group \[ \{ kind: KIND_\w+ count: )\d+", rf"\g<1>{instances}", text)
    path.write_text(text)
    return to


def _served_variants(settings: Settings, work: Path, device: str,
                     rows: int) -> Iterator[tuple[str, Path, str | None]]:
    """(label, repository, config name) of each served variant: the shipped GPU config
    with its sequence cache off, and the eager network with incremental encoding on one
    instance (a member's rows must reach the instance that holds their cache), its
    cache sized to hold all `rows`. On the CPU (a dry run) the CPU config, at fp32."""
    src, name = settings.triton_repo, settings.triton_model
    config, config_name = ("configs/gpu.pbtxt", "gpu") if device == "cuda" else ("config.pbtxt", None)
    yield "full", configured_copy(src, name, work / "repo-full", config, encoder_cache="off"), config_name
    yield "incremental", configured_copy(src, name, work / "repo-incremental", config, instances=1,
                                         network="eager", encoder_cache="incremental",
                                         encoder_cache_mb=str(-(-rows * SLOT_BYTES >> 20))), config_name


def measure(settings: Settings, device: str, sizes, triton: bool = True, log=print) -> dict:
    """Every variant at every size (module docstring); the results as results-gpu.json holds them."""
    import torch

    from models.serving import export_network, prepare

    _, vocab, hp = load_model(settings)
    k, pairs = hp["top_k"], extension_pairs(hp["max_len"])
    work = settings.state_dir / "bench-gpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    networks = {p: prepare(load_model(settings)[0], device, p if device == "cuda" else "fp32")
                for p in (PRECISIONS if device == "cuda" else ("fp32",))}
    cpu = prepare(load_model(settings)[0], "cpu", "fp32") if device == "cuda" else None
    results = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit(),
               "machine": machine(), "device": device, "clients": CLIENTS, "pairs": sum(map(len, pairs)),
               "members": len(pairs),
               "command": "python -m bench.gpu" + ("" if device == "cuda" else " --device cpu"), "sizes": []}
    rows_by_size = {b: calls_for(b) * b for b in sizes}
    served_rows = sum(rows_by_size.values())  # one server's rows, all distinct
    needed, most = served_rows if triton else max(rows_by_size.values()), len(pairs) * len(vocab.items)
    if needed > most:  # said before any measure, not after the in-process ones
        raise ValueError(f"--sizes {','.join(map(str, sizes))} need {needed:,} distinct rows; "
                         f"{len(pairs)} members and {len(vocab.items):,} items make at most {most:,}")
    per_size: dict[int, dict] = {b: {"batch": b, "rows": rows_by_size[b]} for b in sizes}
    for b in sizes:
        pool = distinct_pairs(pairs, vocab.items, rows_by_size[b])  # the same rows for every variant
        for p, network in networks.items():
            for e in ENCODINGS:
                per_size[b][f"{device}_{p}_{e}"] = in_process(network, vocab, k, pool, b, e, sync)
        if device == "cuda":  # the CPU path beside it, on every core (torch's default threads)
            for e in ENCODINGS:
                per_size[b][f"cpu_fp32_{e}"] = in_process(cpu, vocab, k, pool, b, e, lambda: None)
        log(json.dumps(per_size[b]))
    if triton:
        if device == "cuda":
            torch.cuda.empty_cache()  # this process's cached blocks back, for the server's
        for label, repo, config_name in _served_variants(settings, work, device, served_rows):
            if label == "full":
                # The exported programs again, by the torch at hand: an archive written by a newer
                # torch (the project pins 2.13) may not load in the GPU machine's older one.
                export_network(load_model(settings)[0], repo / settings.triton_model / "1")
            server = start_triton(repo, settings.triton_model, work, config_name=config_name)
            offset = 0  # one server for every size: each size's rows follow the last one's
            with stopping(server.process):
                for b in sizes:
                    pool = distinct_pairs(pairs, vocab.items, rows_by_size[b], offset)
                    offset += rows_by_size[b]
                    per_size[b][f"triton_{label}"] = served(server, settings.triton_model, pool, b, label, CLIENTS)
                    log(json.dumps({"batch": b, f"triton_{label}": per_size[b][f"triton_{label}"]}))
    results["sizes"] = [per_size[b] for b in sizes]
    return results


def table(results: dict) -> list[str]:
    """The markdown table of `measure`'s results: one row per batch size and variant."""
    device = results["device"]
    variants = [(f"{device}_{p}_{e}", f"in-process {device.upper()}, {p}, {e}") for p in PRECISIONS
                for e in ENCODINGS]
    served = {"full": "bf16 exported", "incremental": "bf16 eager"} if device == "cuda" else {}
    variants += [(f"triton_{e}", f"Triton {device.upper()}, {served.get(e, 'fp32')}, {e}") for e in ENCODINGS]
    variants += [(f"cpu_fp32_{e}", f"in-process CPU, fp32, {e}") for e in ENCODINGS] if device == "cuda" else []
    lines = ["| batch | variant | seq/s | p50 ms | p99 ms | positions per row | vs CPU full |",
             "|---|---|---|---|---|---|---|"]
    for r in results["sizes"]:
        base = r.get("cpu_fp32_full", {}).get("rows_per_s") if device == "cuda" else None
        for key, label in variants:
            v = r.get(key)
            if v is None:
                continue
            ratio = f"{v['rows_per_s'] / base:.1f}x" if base else "-"
            per_row = f"{v['positions_per_row']:.2f}" if "positions_per_row" in v else "-"
            lines.append(f"| {r['batch']} | {label} | {v['rows_per_s']:,.0f} | {v['p50_ms']:.2f} "
                         f"| {v['p99_ms']:.2f} | {per_row} | {ratio} |")
    return lines


def results_section(results: dict) -> str:
    m = results["machine"]
    where = f"GPU {m['gpu']}" if results["device"] == "cuda" else f"no GPU: a dry run on the CPU ({m['cpu']})"
    head = (f"## GPU\n\nWritten by `{results['command']}` on {results['date']}, commit {results['commit']}, "
            f"{where}, {m['cores']} cores. Every row: a member who added one event since their "
            f"previous scoring ({results['pairs']:,} real extensions of {results['members']} members' "
            f"sequences from tests/data, made distinct); "
            f"Triton: {results['clients']} gRPC clients. Raw figures: bench/results-gpu.json.\n")
    return "\n".join([head, *table(results)]) + "\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block
        print(f"bench.gpu: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m bench.gpu", description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: the same measures without a GPU (a dry run; results not written)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="batch sizes, comma-separated")
    parser.add_argument("--no-triton", action="store_true", help="the in-process measures alone")
    args = parser.parse_args(argv)
    try:
        sizes = tuple(int(s) for s in args.sizes.split(","))
        if not sizes or min(sizes) < 1:
            raise ValueError
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: expected positive whole numbers separated by commas")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench.gpu: no CUDA device on this machine (--device cpu runs the same measures on the CPU)",
              file=sys.stderr)
        return 2
    try:
        results = measure(Settings(), args.device, sizes, triton=not args.no_triton)
    except (LaunchError, ValueError) as exc:
        print(f"bench.gpu: {exc}", file=sys.stderr)
        return 1
    section = results_section(results)
    print(section)
    if args.device == "cuda":
        (HERE / "results-gpu.json").write_text(json.dumps(results, indent=2) + "\n")
        (HERE / "RESULTS-gpu.md").write_text(section)
        replace_gpu_section(HERE / "RESULTS.md", section)
    return 0


def replace_gpu_section(path: Path, section: str) -> None:
    """RESULTS.md with its "## GPU" section replaced by `section` (appended when it has none)."""
    text = path.read_text() if path.is_file() else "# Benchmark results\n"
    parts = re.split(r"(?m)^(?=## )", text)
    for i, part in enumerate(parts):
        if part.startswith("## GPU\n"):
            parts[i] = section + "\n"
            break
    else:
        parts.append(section)
    path.write_text("".join(parts))


if __name__ == "__main__":
    sys.exit(main())
