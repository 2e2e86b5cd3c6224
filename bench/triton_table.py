"""The model served by Triton against the same computation in-process, per batch size."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np

from stream.tools.launcher import Triton
from stream.settings import Settings

BATCH_SIZES = (1, 16, 64, 256)
TRITON_POOL = 60_000  # distinct sequences for the Triton table


def model_rows(lines: list[bytes], count: int, max_len: int):
    """`count` distinct full-length real sequences as model rows: Online Retail members'
    rolling windows of `max_len` events, one after each event (no two rows equal, so
    no request of the table is answered from the served model's sequence cache)."""
    from stream.domain.member_state import MemberState, apply_event, model_inputs
    from stream.domain.parsing import Rejected, parse_event

    states: dict[str, MemberState] = {}
    rows = []
    for line in lines:
        if len(rows) == count:
            break
        e = parse_event(line, None, 1 << 20)
        if not isinstance(e, Rejected) and not e.member_id.startswith("yc-"):
            s = states.setdefault(e.member_id, MemberState(e.member_id, 0))
            apply_event(s, e, max_len)
            if s.n_events >= max_len:
                rows.append(model_inputs(s, max_len))
    return (np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], dtype=np.int8),
            np.array([r[2] for r in rows], dtype=np.float32),
            np.full((len(rows), 1), 7 * 86400.0, dtype=np.float32))


def _timed(fn: Callable[[int], None], seconds: float) -> list[float]:
    """Call fn(0), fn(1), ... for `seconds` (at least 5 calls); their durations."""
    fn(0)
    times: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end or len(times) < 5:
        t = time.perf_counter()
        fn(len(times) + 1)
        times.append(time.perf_counter() - t)
    return times


def triton_table(triton: Triton, settings: Settings, rows, loaded, seconds: float = 2.0) -> list[dict]:
    """Per batch size: one gRPC client request at a time to the served model, and the
    same computation (models/serving.predict) in this process as the ceiling. Every
    request takes the next rows of a pool of distinct sequences: a repeated row would
    be served from the backend's sequence cache and flatter the served figure."""
    import torch
    import tritonclient.grpc as grpc

    from models.serving import predict

    model, vocab, hp = loaded
    client = grpc.InferenceServerClient(triton.grpc_url.removeprefix("grpc://"))
    names = ("ITEM_IDS", "EVENT_TYPES", "GAPS", "SILENCE")
    dtypes = ("BYTES", "INT8", "FP32", "FP32")
    pool = len(rows[0])
    cursor = 0  # rows sent to Triton so far; never wraps within the pool (checked)
    out = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the backend (config.pbtxt torch_threads)

    def take(start: int, b: int):
        idx = np.arange(start, start + b) % pool
        return [a[idx] for a in rows]

    def served(b: int) -> Callable[[int], None]:
        def call(_: int) -> None:
            nonlocal cursor
            inputs = []
            for name, dtype, arr in zip(names, dtypes, take(cursor, b)):
                i = grpc.InferInput(name, list(arr.shape), dtype)
                i.set_data_from_numpy(arr)
                inputs.append(i)
            cursor += b
            client.infer(settings.triton_model, inputs)
        return call

    def local(b: int) -> Callable[[int], None]:
        return lambda i: predict(model, vocab, *take(i * b, b), k=hp["top_k"])

    try:
        for b in BATCH_SIZES:
            row = {"batch": b}
            for label, fn in (("triton", served(b)), ("in_process", local(b))):
                times = _timed(fn, seconds)
                row[f"{label}_rows_per_s"] = b * len(times) / sum(times)
                row[f"{label}_p50_ms"] = 1000 * statistics.median(times)
                row[f"{label}_p99_ms"] = 1000 * float(np.percentile(times, 99))
            out.append(row)
    finally:
        torch.set_num_threads(threads)
        client.close()
    if cursor > pool:
        raise RuntimeError(f"Triton table sent {cursor} rows from a pool of {pool}: rows repeated")
    return out
