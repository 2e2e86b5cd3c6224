"""Scoring members with the model served by Triton (async gRPC).

One `score` call = one request per `max_rows` rows (normally exactly one per
batch); Triton's dynamic batcher merges the requests of all workers. The
streaming code meets the model only at its signature: raw item ids, event
type codes and gaps in; churn probability, top-K ids and scores out
(stream/scoring/signature.py).
"""
from __future__ import annotations

import asyncio
import struct
from itertools import chain
from typing import Sequence

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc import aio as grpc_aio
from tritonclient.utils import InferenceServerException

from stream.memo import Memo
from stream.scoring import signature as sig
from stream.scoring.scores import Row, Scores, ScoringUnavailable
from stream.scoring.signature import OUTPUTS

# Asked for when the served model declares it (models/triton_backend.py): every row's
# churn probability at each inactivity checkpoint too, so that a checkpoint of a
# member who stayed silent needs no request of its own.
AT_INPUT, AT_OUTPUT = sig.CHECKPOINT_SILENCE, sig.CHURN_AT_CHECKPOINTS


def _wire_items(max_entries: int = 1_000_000) -> Memo[bytes, bytes]:
    """Item id -> its element in Triton's BYTES wire layout (4-byte little-endian
    length, then the bytes), built once per distinct id."""
    return Memo(lambda item: len(item).to_bytes(4, "little") + item, max_entries)


class _BytesInput(InferInput):
    """A BYTES input sent as wire bytes built by the caller: tritonclient's own
    serializer walks the elements one by one in Python (a quarter of the scoring
    cost on the worker's side for 1,024 rows of 50 ids); joining cached elements
    does the same in C. Overrides the one method the request builder reads the
    content through (tritonclient.grpc._utils)."""

    def __init__(self, name: str, shape: list[int], raw: bytes):
        super().__init__(name, shape, "BYTES")
        self._raw = raw

    def _get_content(self) -> bytes:
        return self._raw


def bytes_wire(rows: list["Row"], wire: dict) -> bytes:
    """The rows' item ids as one BYTES tensor's wire bytes, row after row."""
    return b"".join(map(wire.__getitem__, chain.from_iterable(r.items for r in rows)))


_LENGTH = struct.Struct("<I").unpack_from


def strings_from_wire(raw: bytes, rows: int, width: int) -> list[list[str]]:
    """A [rows, width] BYTES tensor's wire bytes -> rows of str (a third of the time
    of tritonclient's numpy object array plus decoding each element)."""
    flat, pos = [], 0
    for _ in range(rows * width):
        (n,) = _LENGTH(raw, pos)
        pos += 4
        flat.append(raw[pos:pos + n].decode())
        pos += n
    if pos != len(raw):
        raise ValueError(f"BYTES tensor: {len(raw) - pos} bytes after {rows}x{width} elements")
    return [flat[i:i + width] for i in range(0, rows * width, width)]


class TritonScorer:
    def __init__(self, url: str, model: str, timeout_s: float, max_rows: int,
                 checkpoints_days: Sequence[int] = ()):
        self.url, self.model, self.timeout_s, self.max_rows = url, model, timeout_s, max_rows
        self._client: grpc_aio.InferenceServerClient | None = None
        self.model_version = f"{model}@unknown"
        self.described = False
        # Seconds of silence of each checkpoint, in the order of `checkpoints_days`; sent
        # once the served model is known to take them.
        self.checkpoint_silences = np.array([d * 86400.0 for d in checkpoints_days], np.float32)
        self.checkpoints_served = False
        self.requests = 0
        self.rows = 0
        self._wire = _wire_items()

    async def start(self) -> None:
        self._client = grpc_aio.InferenceServerClient(self.url)
        try:
            await self.describe()
        except ScoringUnavailable:
            pass  # Triton may come later; scoring falls back until it does

    async def describe(self) -> str:
        """model@version/vocab-hash, read from the served model's config."""
        try:
            meta = await self._client.get_model_metadata(self.model, as_json=True,
                                                          client_timeout=self.timeout_s)
            config = await self._client.get_model_config(self.model, as_json=True,
                                                         client_timeout=self.timeout_s)
            sha = config["config"].get("parameters", {}).get("vocab_sha256", {}).get("string_value", "")
            version = max(meta.get("versions", ["?"]), key=lambda v: (len(v), v))
            served = any(i.get("name") == AT_INPUT for i in config["config"].get("input", []))
        except Exception as exc:  # noqa: BLE001 (down, timed out, or an answer of another shape)
            raise ScoringUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self.model_version = f"{self.model}@{version}/vocab:{sha[:12]}"
        self.checkpoints_served = served
        self.described = True
        return self.model_version

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def score(self, rows: list[Row]) -> Scores:
        if not rows:
            return Scores(np.zeros(0, np.float32), [], np.zeros((0, 0), np.float32))
        if not self.described and self._client is not None:
            try:  # Triton came up after the worker: learn what it serves now
                await self.describe()
            except ScoringUnavailable:
                pass  # the request below says why
        chunks = [rows[i:i + self.max_rows] for i in range(0, len(rows), self.max_rows)]
        parts = await asyncio.gather(*(self._infer(c) for c in chunks))
        at = [p.churn_at for p in parts]
        return Scores(np.concatenate([p.churn for p in parts]),
                      [row for p in parts for row in p.items],
                      np.concatenate([p.scores for p in parts]),
                      None if any(a is None for a in at) else np.concatenate(at))

    async def _infer(self, rows: list[Row]) -> Scores:
        if self._client is None:
            raise ScoringUnavailable("scorer not started")
        n = len(rows)
        inputs = [_BytesInput(sig.ITEM_IDS, [n, len(rows[0].items)], bytes_wire(rows, self._wire))]
        arrays = {
            sig.EVENT_TYPES: np.array([r.types for r in rows], dtype=np.int8),
            sig.GAPS: np.array([r.gaps for r in rows], dtype=np.float32),
            sig.SILENCE: np.array([[r.silence_s] for r in rows], dtype=np.float32),
        }
        asked = OUTPUTS
        if self.checkpoints_served and len(self.checkpoint_silences):
            arrays[AT_INPUT] = np.tile(self.checkpoint_silences, (n, 1))
            asked = (*OUTPUTS, AT_OUTPUT)
        for name, arr in arrays.items():
            inp = InferInput(name, list(arr.shape), {np.int8: "INT8", np.float32: "FP32"}[arr.dtype.type])
            inp.set_data_from_numpy(arr)
            inputs.append(inp)
        try:
            result = await self._client.infer(
                self.model, inputs, outputs=[InferRequestedOutput(o) for o in asked],
                client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise ScoringUnavailable(str(exc)) from exc
        self.requests += 1
        self.rows += n
        response = result.get_response()
        index = [o.name for o in response.outputs].index(sig.TOP_ITEMS)
        k = int(response.outputs[index].shape[1])
        return Scores(result.as_numpy(sig.CHURN_PROBABILITY).reshape(-1),
                      strings_from_wire(response.raw_output_contents[index], n, k),
                      result.as_numpy(sig.TOP_SCORES),
                      result.as_numpy(AT_OUTPUT) if len(asked) > len(OUTPUTS) else None)
