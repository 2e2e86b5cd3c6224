"""The bench log: real events from the data sets, built once into .memberstream/logs/bench.jsonl."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from stream.settings import Settings
from stream.tools.logs import read_log, write_log

BENCH_LOG = Path(".memberstream/logs/bench.jsonl")


def build_log(path: Path, data_dir: Path) -> int:
    """Real events, in event-time order per source: every Online Retail line of a
    known customer (cancellations included: they go to the DLQ) followed by
    every YooChoose-100k click (sessions as members)."""
    from models.datasets import contract_events, online_retail, yoochoose

    retail = online_retail(data_dir, include_cancellations=True)
    clicks = [e for part in ("train_full", "test") for ev in yoochoose(data_dir, part).values() for e in ev]

    def events():
        for prefix, source in (("", retail), ("yc-", clicks)):
            for event in contract_events(source):
                event["member_id"] = prefix + event["member_id"]
                yield event
    return write_log(path, events())


def bench_lines(settings: Settings, say: Callable[[str], None] = print) -> list[bytes]:
    """The bench log's lines, built from the data sets on first use."""
    if not BENCH_LOG.is_file():
        say(f"building {BENCH_LOG} from {settings.data_dir} ...")
        build_log(BENCH_LOG, settings.data_dir)
    return read_log(BENCH_LOG)
