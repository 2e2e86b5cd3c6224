"""The served computation: raw member sequences in, churn and top-K out.

Copied verbatim into every export; the Triton backend and the eager
reference used by tests and evaluation both call `predict`.

Fast paths that keep the arithmetic: columns that are padding in every row
of the batch are cut off before the network (position ids count real
events only and padding is masked, so the newest position sees the same
inputs), which makes a batch of short sessions cost what their length
costs, not `max_len`; and a batch of mixed lengths is encoded in groups of
rows of similar length, each at its own longest row's width (`encode_newest`:
the bench log's scoring mix computed 2.97x its real positions at one width
per batch of 256, bench/scoring_mix.py). On a GPU, `prepare(model, device, "bf16")` runs the
network under bfloat16 autocast; softmax, top-K and the churn head's
survival arithmetic stay in float32 (tolerances: tests/unit/models/test_serving.py).
"""
from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

try:
    from .encoding import (N_FEATURES, SILENCE_EDGES, EncodedBatch, ItemVocabulary, bucketize, encode,
                           features_at, sequence_counts)
    from .network import MemberTransformer
except ImportError:  # pragma: no cover - inside an export
    from encoding import (N_FEATURES, SILENCE_EDGES, EncodedBatch, ItemVocabulary, bucketize, encode,
                          features_at, sequence_counts)
    from network import MemberTransformer

if TYPE_CHECKING:  # encoder_cache imports this module
    from .encoder_cache import EncoderCache

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _autocast_dtype(precision: str):
    """The dtype `predict` autocasts to for a precision name (None: fp32, no autocast)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


def prepare(model: MemberTransformer, device: str = "cpu", precision: str = "fp32") -> MemberTransformer:
    """Move to `device` and record the autocast precision `predict` will use."""
    dtype = _autocast_dtype(precision)
    model = model.to(device).eval()
    model.serving_dtype = dtype
    return model


class _Encoder(torch.nn.Module):
    def __init__(self, model: MemberTransformer):
        super().__init__()
        self.model = model

    def forward(self, items, types, gap_buckets):
        return self.model.newest_hidden(EncodedBatch(items, types, gap_buckets, None, None))


class _Heads(torch.nn.Module):
    def __init__(self, model: MemberTransformer):
        super().__init__()
        self.model = model

    def forward(self, last, silence_buckets, features):
        return self.model.heads(last, EncodedBatch(None, None, None, silence_buckets, features))


EXPORTED = ("encoder.pt2", "heads.pt2")


def export_network(model: MemberTransformer, directory) -> list:
    """The GPU variant's network as two torch.export programs (encoder.pt2: sequences ->
    newest hidden state; heads.pt2: hidden state -> item logits, churn): ATen graphs
    with the weights, any batch size (1-4096) and length (1-50), calling no Python
    module code (the backend still builds the eager network to check them). Exported
    in fp32 on the CPU; `ExportedNetwork.load` moves them to the serving device."""
    model = model.cpu().eval()
    batch, length = torch.export.Dim("batch", min=1, max=4096), torch.export.Dim("length", min=1, max=50)
    items = torch.tensor([[0, 0, 5, 7], [3, 4, 5, 6], [0, 0, 0, 9]])
    types, gaps = (items > 0).long(), (items > 0).long() * 3
    silence, features = torch.tensor([1, 2, 3]), torch.zeros(3, N_FEATURES)
    seq = {0: batch, 1: length}
    with torch.no_grad():
        last = model.newest_hidden(EncodedBatch(items, types, gaps, silence, features))
    programs = (
        torch.export.export(_Encoder(model), (items, types, gaps),
                            dynamic_shapes={"items": seq, "types": seq, "gap_buckets": seq}),
        torch.export.export(_Heads(model), (last, silence, features),
                            dynamic_shapes={"last": {0: batch}, "silence_buckets": {0: batch},
                                            "features": {0: batch}}))
    paths = [Path(directory) / name for name in EXPORTED]
    for program, path in zip(programs, paths):
        torch.export.save(program, str(path))
    return paths


class ExportedNetwork:
    """The exported network (export_network) behind the calls `predict` and
    EncoderCache make; autocast applies to its ATen ops as to the eager module's."""

    def __init__(self, encoder, heads, precision: str = "fp32"):
        self.serving_dtype = _autocast_dtype(precision)
        self.encoder, self._heads = encoder, heads

    @classmethod
    def load(cls, directory, device: str = "cpu", precision: str = "fp32") -> "ExportedNetwork":
        from torch.export.passes import move_to_device_pass

        programs = [torch.export.load(str(Path(directory) / name)) for name in EXPORTED]
        if device != "cpu":
            programs = [move_to_device_pass(p, device) for p in programs]
        return cls(*(p.module() for p in programs), precision=precision)

    def parameters(self):
        return self.encoder.parameters()

    def newest_hidden(self, batch: EncodedBatch) -> torch.Tensor:
        return self.encoder(batch.items, batch.types, batch.gap_buckets)

    def heads(self, last: torch.Tensor, batch: EncodedBatch):
        return self._heads(last, batch.silence_buckets, batch.features)

    def churn_probability(self, last: torch.Tensor, batch: EncodedBatch) -> torch.Tensor:
        return self.heads(last, batch)[1]

    def __call__(self, batch: EncodedBatch):
        return self.heads(self.newest_hidden(batch), batch)


def trim_padding(item_ids: np.ndarray, types: np.ndarray, gaps: np.ndarray):
    """Drop the leading columns that are padding in every row (at least one column stays)."""
    used = np.flatnonzero(types.any(axis=0))
    start = int(used[0]) if len(used) else types.shape[1] - 1
    return item_ids[:, start:], types[:, start:], gaps[:, start:]


# What one encoder call costs beyond its positions, in positions: on a CPU thread a call
# takes ~0.27 ms however small, the time of ~90 positions (bench/scoring_mix.py); on a GPU
# the kernels' launches are nearly all of a call's time, so its rows stay in one call.
CALL_COST_POSITIONS = {"cpu": 100, "cuda": 1_000_000}


def length_groups(lengths: np.ndarray, call_cost: int) -> list[np.ndarray]:
    """Row indices by sequence length, in groups that cost the fewest positions in all
    when each is encoded at its longest row's width and each call adds `call_cost`
    (an exact partition of the rows sorted by length, chosen by dynamic programming
    over the distinct lengths)."""
    order = np.argsort(lengths, kind="stable")
    widths, counts = np.unique(np.maximum(lengths[order], 1), return_counts=True)
    ends = np.cumsum(counts)  # rows of length <= widths[j]
    n = len(widths)
    best, cut = [0.0] + [float("inf")] * n, [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j):  # one group: the rows longer than widths[i - 1], up to widths[j - 1]
            cost = best[i] + (ends[j - 1] - (ends[i - 1] if i else 0)) * int(widths[j - 1]) + call_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], n
    while j > 0:
        i = cut[j]
        groups.append(order[(ends[i - 1] if i else 0):ends[j - 1]])
        j = i
    return groups[::-1]


def encode_newest(model: "MemberTransformer | ExportedNetwork", batch: EncodedBatch) -> torch.Tensor:
    """`model.newest_hidden(batch)`, the rows encoded in `length_groups`, each group at its
    own width (left padding: its last columns). Padding is masked and position ids count
    real events, so each row's result is what the whole batch's call gives it."""
    real = (batch.types > 0).sum(dim=1).cpu().numpy()
    groups = length_groups(real, CALL_COST_POSITIONS.get(batch.types.device.type, 1_000_000))
    if len(groups) == 1:
        width = max(int(real.max(initial=0)), 1)
        return model.newest_hidden(EncodedBatch(batch.items[:, -width:], batch.types[:, -width:],
                                                batch.gap_buckets[:, -width:], None, None))
    out = None
    for rows in groups:
        width = max(int(real[rows].max()), 1)
        index = torch.from_numpy(rows).to(batch.types.device)
        last = model.newest_hidden(EncodedBatch(*(t[index, -width:] for t in (batch.items, batch.types,
                                                                                batch.gap_buckets)), None, None))
        if out is None:
            out = last.new_empty((len(real), last.shape[1]))
        out[index] = last
    return out


def _lookup(vocab: ItemVocabulary) -> np.ndarray:
    """Dense index -> raw item id (bytes), built once per vocabulary."""
    table = getattr(vocab, "_serving_lookup", None)
    if table is None:
        table = vocab._serving_lookup = np.array([b"", b""] + [i.encode() for i in vocab.items], dtype=object)
    return table


# --- Triton's BYTES wire format: per element a 4-byte little-endian length, then the bytes.
_LENGTH = struct.Struct("<I")
_PAD_RUN = re.compile(rb"(?:\x00\x00\x00\x00)+")  # consecutive empty elements (padding)


def bytes_from_wire(encoded) -> np.ndarray:
    """Wire bytes -> 1-D object array of bytes; what triton_python_backend_utils'
    `deserialize_bytes_tensor` returns, 3-4x sooner (it formats a struct code per
    element; padding, most of a short session's row, is taken a run at a time)."""
    buf = encoded.tobytes() if isinstance(encoded, np.ndarray) else bytes(encoded)
    out: list[bytes] = []
    append, extend, unpack, pads = out.append, out.extend, _LENGTH.unpack_from, _PAD_RUN.match
    end, pos, empty = len(buf), 0, [b""]
    while pos < end:
        (n,) = unpack(buf, pos)
        if n:
            pos += 4
            append(buf[pos:pos + n])
            pos += n
        else:  # a zero length: 4 zero bytes, so the run matches at least once
            run_end = pads(buf, pos).end()
            extend(empty * ((run_end - pos) >> 2))
            pos = run_end
    if pos != end:
        raise ValueError(f"BYTES tensor: element length runs {pos - end} bytes past the end")
    return np.array(out, dtype=np.object_)


def bytes_to_wire(array: np.ndarray) -> bytes:
    """Object array of bytes -> wire bytes, in C order."""
    pack = _LENGTH.pack
    parts: list[bytes] = []
    for item in array.reshape(-1).tolist():
        parts.append(pack(len(item)))
        parts.append(item)
    return b"".join(parts)


def predict(model: "MemberTransformer | ExportedNetwork", vocab: ItemVocabulary, item_ids: np.ndarray,
            types: np.ndarray, gaps: np.ndarray, silence: np.ndarray, k: int,
            cache: "EncoderCache | None" = None, at_silences: "np.ndarray | None" = None):
    """(churn [B] float32, top item ids [B, k] bytes, top scores [B, k] float32).

    Scores are next-item probabilities (softmax over the vocabulary). Given
    `at_silences` ([B, C] seconds), a fourth: each row's churn probability
    [B, C] float32 at those silences instead of its own, from the same encoded
    sequence: what the row would score at its inactivity checkpoints if no
    event came in between (the churn head alone, C times per row).
    """
    item_ids, types, gaps = trim_padding(item_ids, types, gaps)
    device = next(model.parameters()).device
    batch = encode(vocab, item_ids, types, gaps, silence)
    if device.type != "cpu":
        batch = batch.to(device)
    dtype = getattr(model, "serving_dtype", None)
    with torch.inference_mode():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            last = encode_newest(model, batch) if cache is None else cache.last_hidden(model, batch)
            logits, churn = model.heads(last, batch)
            later = None if at_silences is None else _churn_at(model, last, types, gaps, at_silences)
        probs = torch.softmax(logits.float(), dim=1)
        scores, idx = probs.topk(k, dim=1)
    lookup = _lookup(vocab)
    out = (churn.float().cpu().numpy().astype(np.float32), lookup[idx.cpu().numpy()],
           scores.cpu().numpy().astype(np.float32))
    return out if later is None else (*out, later)


def _churn_at(model, last: torch.Tensor, types: np.ndarray, gaps: np.ndarray,
              silences: np.ndarray) -> np.ndarray:
    """[B, C] churn probabilities of the encoded rows (`last`) at [B, C] silences: the
    rows' sequence counts once, the silence's features and bucket per column."""
    rows, width = silences.shape
    if width == 0:
        return np.zeros((rows, 0), np.float32)
    flat = silences.astype(np.float64).reshape(-1)  # row-major: row i's C silences together
    counts = tuple(np.repeat(c, width) for c in sequence_counts(types.astype(np.int64),
                                                                gaps.astype(np.float64)))
    at = EncodedBatch(None, None, None, torch.from_numpy(bucketize(flat, SILENCE_EDGES)).to(last.device),
                      torch.from_numpy(features_at(counts, flat)).to(last.device))
    churn = model.churn_probability(last.repeat_interleave(width, dim=0), at)
    return churn.float().cpu().numpy().astype(np.float32).reshape(rows, width)
