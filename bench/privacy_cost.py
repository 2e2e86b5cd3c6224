"""What pseudonymisation costs the per-event work (SECURITY.md): processor_alone_eps
on the bench log without and with a key, in turns, in this one process, so both
see the same machine. `python -m bench.privacy_cost [ROUNDS]`."""
from __future__ import annotations

import statistics
import sys

from bench.bench_log import bench_lines
from bench.processor_alone import processor_alone_eps
from stream.settings import Settings


def main(rounds: int = 3) -> None:
    plain = Settings(_env_file=None)
    keyed = Settings(_env_file=None, pseudonymization_key="b" * 64, pseudonymization_key_id="k1")
    lines = bench_lines(plain)
    runs: dict[str, list[float]] = {"member ids as given": [], "pseudonymised (HMAC-SHA256)": []}
    for _ in range(rounds):
        for name, settings in zip(runs, (plain, keyed)):
            runs[name].append(processor_alone_eps(lines, settings))
    base = statistics.median(runs["member ids as given"])
    print(f"processor alone, {len(lines)} events, median of {rounds} alternating runs")
    print(f"{'':32} {'events/s':>10} {'vs plain':>9}")
    for name, values in runs.items():
        eps = statistics.median(values)
        print(f"{name:32} {eps:>10,.0f} {eps / base:>9.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
