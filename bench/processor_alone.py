"""The per-event work alone, in this process: no Kafka, no Faust, no model."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import orjson

from bench.loaded_stack import PARTITIONS
from stream.settings import Settings


class _ConstantScores:
    """processor_alone_eps only: answers every row at once with fixed scores, so that
    the figure is memberstream's per-event work and nothing else."""
    model_version = "bench@constant"

    def __init__(self, checkpoints: int):
        self.checkpoints = checkpoints  # churn at every checkpoint too, as the served model

    async def score(self, rows):
        from stream.scoring.scores import Scores

        n = len(rows)
        return Scores(np.full(n, 0.3, np.float32), [[f"item{i}" for i in range(10)]] * n,
                      np.full((n, 10), 0.1, np.float32), np.full((n, self.checkpoints), 0.3, np.float32))


def bench_records(lines: list[bytes]) -> list:
    """The bench log as the processor's records, on the partitions the replay's producer
    would put them on, with their offsets there."""
    from aiokafka.partitioner import DefaultPartitioner

    from stream.processing.records import Record

    partitioner, all_partitions = DefaultPartitioner(), list(range(PARTITIONS))
    partitions: dict[int, int] = {}
    records = []
    for line in lines:
        try:
            key = str(orjson.loads(line).get("member_id", "")).encode()
        except (orjson.JSONDecodeError, AttributeError):
            key = b""
        p = partitioner(key or None, all_partitions, all_partitions)  # as the replay's producer
        records.append(Record(p, partitions.setdefault(p, 0), key or None, line))
        partitions[p] += 1
    return records


async def run_batches(proc, records: list, settings: Settings, each=lambda result: None,
                      after=lambda: None) -> None:
    """The records in the worker's batches, the pending members scored after every batch
    (`each` is given every result; `after` is called once a batch is scored)."""
    for i in range(0, len(records), settings.batch_max_events):
        each(await proc.process(records[i:i + settings.batch_max_events]))
        while proc.pending:
            each(await proc.score_pending(settings.triton_max_rows))
        after()


def processor_alone_eps(lines: list[bytes], settings: Settings) -> float:
    """The processor over the bench log in this process, in the worker's batches, the
    pending members scored after every batch and every output and changelog value
    built; CPU seconds of this process."""
    import gc

    from stream.processing.member_cache import tune_gc
    from stream.processing.processor import MemberProcessor

    records = bench_records(lines)
    proc = MemberProcessor(settings, {}, _ConstantScores(len(settings.inactivity_checkpoints_days)))

    def built(result) -> None:
        for state in result.changed.values():
            state.to_bytes()

    thresholds = gc.get_threshold()
    tune_gc(settings.gc_threshold)  # as the worker runs
    try:
        t = time.process_time()
        asyncio.run(run_batches(proc, records, settings, built))
        return len(records) / (time.process_time() - t)
    finally:
        gc.set_threshold(*thresholds)
