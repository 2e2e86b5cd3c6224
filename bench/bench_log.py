"""The bench log: real events from the data sets, built once into .memberstream/logs/bench.jsonl."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import orjson

from stream.settings import Settings

BENCH_LOG = Path(".memberstream/logs/bench.jsonl")


def build_log(path: Path, data_dir: Path) -> int:
    """Real events, in event-time order per source: every Online Retail line of a
    known customer (cancellations included: they go to the DLQ) followed by
    every YooChoose-100k click (sessions as members)."""
    from models.datasets import contract_events, online_retail, yoochoose

    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "wb") as fh:
        retail = online_retail(data_dir, include_cancellations=True)
        clicks = [e for part in ("train_full", "test")
                  for ev in yoochoose(data_dir, part).values() for e in ev]
        for prefix, source in (("", retail), ("yc-", clicks)):
            for event in contract_events(source):
                event["member_id"] = prefix + event["member_id"]
                fh.write(orjson.dumps(event) + b"\n")
                n += 1
    return n


def read_lines(path: Path) -> list[bytes]:
    with open(path, "rb") as fh:
        return [line.rstrip(b"\n") for line in fh if line.strip()]


def bench_lines(settings: Settings, say: Callable[[str], None] = print) -> list[bytes]:
    """The bench log's lines, built from the data sets on first use."""
    if not BENCH_LOG.is_file():
        say(f"building {BENCH_LOG} from {settings.data_dir} ...")
        build_log(BENCH_LOG, settings.data_dir)
    return read_lines(BENCH_LOG)
