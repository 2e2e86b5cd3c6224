"""The served computation's pieces on the CPU, per 256 rows, side by side.

    python -m bench.serving        # or: make bench-serving

One thread (as the backend: config.pbtxt torch_threads), real member sequences
from tests/data tiled to 256 rows, full length (50 events) and the excerpt's
mix of lengths (trimmed as `predict` trims). Each figure is the fastest of
ROUNDS rounds of CALLS calls, the variants interleaved round by round, since
the machine is noisy. Rows:
  encoder, every position   transformers' GPT2Model over all positions, newest taken
  encoder, newest only      MemberTransformer.newest_hidden (what serving runs)
  encoder, exported         the same as torch.export programs (configs/gpu.pbtxt)
  ids from wire, per element  tritonclient's / pb_utils' deserialize_bytes_tensor
  ids from wire, ours         models/serving.bytes_from_wire (installed in the backend)
  vocabulary lookup           ItemVocabulary.encode of the ids
"""
from __future__ import annotations

import sys
import tempfile
import time
from typing import Callable

import numpy as np
import torch

ROUNDS, CALLS, ROWS = 7, 5, 256


def _fastest(variants: dict[str, Callable[[], object]]) -> dict[str, float]:
    """ms per call: the fastest round of each, rounds interleaved."""
    best = {name: float("inf") for name in variants}
    for fn in variants.values():
        fn()
    for _ in range(ROUNDS):
        for name, fn in variants.items():
            t = time.perf_counter()
            for _ in range(CALLS):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t) / CALLS * 1000)
    return best


def main() -> int:
    from tritonclient.utils import deserialize_bytes_tensor

    from models.encoding import encode
    from models.serving import ExportedNetwork, bytes_from_wire, bytes_to_wire, export_network, trim_padding
    from tests.fixtures.model import excerpt_batch, shipped

    torch.set_num_threads(1)
    model, vocab, _ = shipped()
    raw = excerpt_batch(every=1)
    full = (raw[1] > 0).sum(axis=1) == raw[1].shape[1]
    sets = {"full length": [a[full] for a in raw], "excerpt mix": list(raw)}
    with tempfile.TemporaryDirectory() as tmp:
        export_network(model, tmp)
        exported = ExportedNetwork.load(tmp)
    table = []
    for label, rows in sets.items():
        rows = [np.concatenate([a] * -(-ROWS // len(a)))[:ROWS] for a in rows]
        items, types, gaps = trim_padding(*rows[:3])
        batch = encode(vocab, items, types, gaps, rows[3])
        wire = bytes_to_wire(items)
        buffer = np.frombuffer(wire, dtype=np.uint8)
        with torch.inference_mode():
            times = _fastest({
                "encoder, every position": lambda: model.hidden(batch)[:, -1],
                "encoder, newest only": lambda: model.newest_hidden(batch),
                "encoder, exported": lambda: exported.newest_hidden(batch),
                "ids from wire, per element": lambda: deserialize_bytes_tensor(wire),
                "ids from wire, ours": lambda: bytes_from_wire(buffer),
                "vocabulary lookup": lambda: vocab.encode(items),
            })
        table.append((label, items.shape[1], times))
    names = list(table[0][2])
    print(f"bench.serving: {ROWS} rows, 1 thread, fastest of {ROUNDS} rounds of {CALLS} calls (ms per call)")
    print(f"{'':28s}" + "".join(f"{f'{label} (L={width})':>24s}" for label, width, _ in table))
    for name in names:
        print(f"{name:28s}" + "".join(f"{times[name]:24.2f}" for _, _, times in table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
