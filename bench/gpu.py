"""The GPU serving path (issue 4, part 4), for a machine with an NVIDIA GPU.

    python -m bench.gpu            # or: make bench-gpu

Starts Triton on `configs/gpu.pbtxt` (KIND_GPU, four instances, the exported
network under bf16 autocast, preferred batches 256 and 1024) and measures, side
by side in one run, sequences/s per batch size:
  triton_gpu     the served model, CLIENTS gRPC clients in parallel
  in_process_gpu the same computation (models/serving.predict over the exported
                 network, encoder.pt2 and heads.pt2) on the GPU, bf16
  in_process_cpu the CPU path (fp32, every core) - the "20 times" reference
Inputs are real member sequences from tests/data (tiled to the batch size), so
the run needs nothing beyond the repository. They repeat, so Triton serves a copy of
the model repository whose GPU config turns the backend's sequence cache off:
every request runs the encoder, as in-process. Writes bench/results-gpu.json and
bench/RESULTS-gpu.md, which `make bench` folds into bench/RESULTS.md.
"""
from __future__ import annotations

import json
import re
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bench.exported_model import load_model
from bench.provenance import commit, machine
from stream.tools.launcher import LaunchError, start_triton, stopping
from stream.settings import Settings

HERE = Path(__file__).parent
SIZES = (1, 16, 64, 256, 1024)
CLIENTS = 4
SECONDS = 5.0


def excerpt_rows(n: int):
    from tests.fixtures.model import excerpt_batch

    base = excerpt_batch(every=1)
    reps = -(-n // len(base[0]))
    return [np.concatenate([a] * reps)[:n] for a in base]


def served(triton, model_name: str, batch, clients: int, seconds: float) -> dict:
    import tritonclient.grpc as grpc

    names, dtypes = ("ITEM_IDS", "EVENT_TYPES", "GAPS", "SILENCE"), ("BYTES", "INT8", "FP32", "FP32")
    times: list[float] = []
    lock = threading.Lock()

    def client_loop():
        client = grpc.InferenceServerClient(triton.grpc_url.removeprefix("grpc://"))
        inputs = []
        for name, dtype, arr in zip(names, dtypes, batch):
            i = grpc.InferInput(name, list(arr.shape), dtype)
            i.set_data_from_numpy(arr)
            inputs.append(i)
        client.infer(model_name, inputs)
        end, mine = time.monotonic() + seconds, []
        while time.monotonic() < end:
            t = time.perf_counter()
            client.infer(model_name, inputs)
            mine.append(time.perf_counter() - t)
        with lock:
            times.extend(mine)
        client.close()

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    b = len(batch[0])
    return {"rows_per_s": b * len(times) / wall, "p50_ms": 1000 * statistics.median(times),
            "p99_ms": 1000 * float(np.percentile(times, 99))}


def in_process(model, vocab, k, batch, seconds: float, sync) -> dict:
    from models.serving import predict

    predict(model, vocab, *batch, k=k)
    times = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        predict(model, vocab, *batch, k=k)
        sync()
        times.append(time.perf_counter() - t)
    return {"rows_per_s": len(batch[0]) * len(times) / sum(times),
            "p50_ms": 1000 * statistics.median(times)}


def configured_copy(repo: Path, model: str, to: Path, config: str = "configs/gpu.pbtxt",
                    **parameters: str) -> Path:
    """A copy of `repo`'s model at `to`, with `parameters` set in its `config`."""
    if to.exists():
        shutil.rmtree(to)
    shutil.copytree(repo / model, to / model, ignore=shutil.ignore_patterns("__pycache__"))
    path = to / model / config
    text = path.read_text()
    for key, value in parameters.items():
        text = re.sub(r'parameters \{ key: "%s" value: \{ string_value: "[^"]*" \} \}\n' % key, "", text)
        text += f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}\n'
    path.write_text(text)
    return to


def main() -> int:
    import torch

    from models.serving import ExportedNetwork, export_network, prepare

    if not torch.cuda.is_available():
        print("bench.gpu: no CUDA device on this machine", file=sys.stderr)
        return 2
    settings = Settings()
    work = settings.state_dir / "bench-gpu"
    repo = configured_copy(settings.triton_repo, settings.triton_model, work / "repo",
                           encoder_cache="off")
    # The exported programs again, by the torch at hand: an archive written by a newer
    # torch (the project pins 2.13) may not load in the GPU machine's older one.
    model, vocab, hp = load_model(settings)
    export_network(model, repo / settings.triton_model / "1")
    # What configs/gpu.pbtxt serves: the exported programs on the GPU under bf16 autocast.
    gpu_model = ExportedNetwork.load(repo / settings.triton_model / "1", "cuda", "bf16")
    cpu_model = prepare(model, "cpu", "fp32")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit(),
               "machine": machine(), "clients": CLIENTS, "command": "python -m bench.gpu", "sizes": []}
    try:
        triton = start_triton(repo, settings.triton_model, work, config_name="gpu")
    except LaunchError as exc:
        print(f"bench.gpu: {exc}", file=sys.stderr)
        return 1
    with stopping(triton.process):
        for b in SIZES:
            batch = excerpt_rows(b)
            row = {"batch": b,
                   "triton_gpu": served(triton, settings.triton_model, batch, CLIENTS, SECONDS),
                   "in_process_gpu": in_process(gpu_model, vocab, hp["top_k"], batch, SECONDS,
                                                torch.cuda.synchronize),
                   "in_process_cpu": in_process(cpu_model, vocab, hp["top_k"], batch, min(SECONDS, 3.0),
                                                lambda: None)}
            results["sizes"].append(row)
            print(json.dumps(row), flush=True)
    (HERE / "results-gpu.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"## GPU\n\nWritten by `python -m bench.gpu` on {results['date']}, commit {results['commit']}, "
             f"GPU {results['machine']['gpu']}, {results['machine']['cores']} cores; Triton on "
             f"configs/gpu.pbtxt (bf16), {CLIENTS} gRPC clients. Raw figures: bench/results-gpu.json.\n",
             "| batch | Triton GPU seq/s | p50 ms | p99 ms | in-process GPU seq/s | in-process CPU seq/s "
             "| Triton GPU / CPU |", "|---|---|---|---|---|---|---|"]
    for r in results["sizes"]:
        t, g, c = r["triton_gpu"], r["in_process_gpu"], r["in_process_cpu"]
        lines.append(f"| {r['batch']} | {t['rows_per_s']:,.0f} | {t['p50_ms']:.2f} | {t['p99_ms']:.2f} "
                     f"| {g['rows_per_s']:,.0f} | {c['rows_per_s']:,.0f} "
                     f"| {t['rows_per_s'] / c['rows_per_s']:.1f}x |")
    (HERE / "RESULTS-gpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
