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
INCREMENTAL_ROWS = 2_048  # members who added one event, for the incremental encoding's table


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
    return model_arrays(rows)


def prefix_pairs(lines: list[bytes], count: int, max_len: int):
    """Up to `count` real rows of members who added one event since their previous
    scoring, and those previous rows: one per Online Retail member, at a length from 21
    to max_len - 1 events (spread over the members), so that no window slid (a slid
    window keeps no prefix). One per member, as a served cache sees a member's sequence
    only grow: a second, longer prefix of the same member would take the slot of the
    first. (previous rows, rows), each as model_rows gives them."""
    from stream.domain.member_state import MemberState, apply_event, model_inputs
    from stream.domain.parsing import Rejected, parse_event

    states: dict[str, MemberState] = {}
    at: dict[str, int] = {}  # member -> the length of their row
    before, after = [], []
    for line in lines:
        if len(after) == count:
            break
        e = parse_event(line, None, 1 << 20)
        if isinstance(e, Rejected) or e.member_id.startswith("yc-"):
            continue
        s = states.get(e.member_id)
        if s is None:
            s = states[e.member_id] = MemberState(e.member_id, 0)
            at[e.member_id] = 21 + len(at) % (max_len - 21)
        if s.n_events + 1 == at[e.member_id]:
            before.append(model_inputs(s, max_len))
            apply_event(s, e, max_len)
            after.append(model_inputs(s, max_len))
        else:
            apply_event(s, e, max_len)
    return model_arrays(before), model_arrays(after)


def model_arrays(rows: list) -> tuple:
    """model_inputs rows as the model's input arrays, each scored a week after its newest event."""
    return (np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], dtype=np.int8),
            np.array([r[2] for r in rows], dtype=np.float32),
            np.full((len(rows), 1), 7 * 86400.0, dtype=np.float32))


def incremental_table(pairs, loaded) -> list[dict]:
    """Per batch size, in this process on one thread: the rows of `prefix_pairs` encoded
    in full (length groups, no cache) and incrementally (models/encoder_cache.py, warmed
    with every row's previous one, as the served model's cache would be). Each row is
    asked once per variant: a row asked again would be a full hit."""
    import torch

    from models.encoder_cache import EncoderCache
    from models.serving import predict

    model, vocab, hp = loaded
    (before, after), n = pairs, len(pairs[1][0])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = []
    try:
        for b in BATCH_SIZES:
            row = {"batch": b, "rows": n}
            for label in ("full", "incremental"):
                cache = EncoderCache() if label == "incremental" else None
                if cache is not None:
                    for i in range(0, n, 256):
                        predict(model, vocab, *(a[i:i + 256] for a in before), k=hp["top_k"], cache=cache)
                    warmed = cache.positions
                times = []
                for i in range(0, n, b):
                    t = time.perf_counter()
                    predict(model, vocab, *(a[i:i + b] for a in after), k=hp["top_k"], cache=cache)
                    times.append(time.perf_counter() - t)
                row[f"{label}_rows_per_s"] = n / sum(times)
                row[f"{label}_p50_ms"] = 1000 * statistics.median(times)
                if cache is not None:
                    row["incremental_positions"] = cache.positions - warmed  # of the timed rows
            out.append(row)
    finally:
        torch.set_num_threads(threads)
    return out


INPUTS = (("ITEM_IDS", "BYTES"), ("EVENT_TYPES", "INT8"), ("GAPS", "FP32"), ("SILENCE", "FP32"))


def infer_inputs(arrays) -> list:
    """model_arrays as the served model's gRPC inputs."""
    import tritonclient.grpc as grpc

    out = []
    for (name, dtype), arr in zip(INPUTS, arrays):
        i = grpc.InferInput(name, list(arr.shape), dtype)
        i.set_data_from_numpy(arr)
        out.append(i)
    return out


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
            inputs = infer_inputs(take(cursor, b))
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
