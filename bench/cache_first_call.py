"""The served model's first call with a fresh encoder cache, against its next calls.

    python -m bench.cache_first_call

The cache's table is allocated at its first call (models/encoder_cache.py), in
the served model's process: in "full" mode (the served default) a slot costs
about 3 KB, so a 1 GiB budget holds some 380,000 of them. Each round makes a
fresh cache of each mode and asks it for two real sequences of the bench log,
then two more; the second call is the ceiling the first is compared with.
Prints a table; exit 0.
"""
from __future__ import annotations

import time

from bench.bench_log import bench_lines
from bench.exported_model import load_model
from bench.triton_table import model_rows
from stream.settings import Settings

ROUNDS = 3


def main() -> int:
    from models.encoder_cache import EncoderCache
    from models.serving import predict

    settings = Settings()
    model, vocab, hp = load_model(settings)
    rows = model_rows(bench_lines(settings), 4, settings.sequence_length)
    print(f"{'cache mode':<12}{'slots':>10}{'first call ms':>15}{'second call ms':>16}")
    for mode in ("full", "incremental"):
        for _ in range(ROUNDS):
            cache = EncoderCache(incremental=mode == "incremental")
            times = []
            for part in (slice(0, 2), slice(2, 4)):
                t = time.perf_counter()
                predict(model, vocab, *(a[part] for a in rows), k=hp["top_k"], cache=cache)
                times.append(1000 * (time.perf_counter() - t))
            print(f"{mode:<12}{cache.slots:>10,}{times[0]:>15.1f}{times[1]:>16.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
