"""The agent's input cursor against a real broker: records Faust's group offsets
pass over are read directly and applied once (stream/processing/input_cursor.py)."""
from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from aiokafka import AIOKafkaProducer

from stream.contract import topics
from stream.kafka.admin import ensure_topics
from stream.kafka.refetcher import Refetcher

from .conftest import excerpt_lines, settings
from .test_pipeline import _valid_by_member

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def test_refetcher_reads_ranges_and_sees_a_recreated_topic(broker):
    async def run():
        await ensure_topics(broker.bootstrap, 2, names=("cursor-test",))
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for i in range(30):
                await producer.send_and_wait("cursor-test", str(i).encode(), partition=1)
        finally:
            await producer.stop()
        r = Refetcher(broker.bootstrap, "cursor-test")
        await r.start()
        try:
            middle = [int(m.value) for m in await r.fetch(1, 5, 12)]
            tail = [m.offset for m in await r.fetch(1, 25)]
            empty = await r.fetch(0, 0)
            resumes = (await r.resume_offset(1, None), await r.resume_offset(1, 20),
                       await r.resume_offset(1, 20, seen=21), await r.resume_offset(1, 500))
        finally:
            await r.stop()
        return middle, tail, empty, resumes

    middle, tail, empty, resumes = asyncio.run(run())
    assert middle == list(range(5, 12))
    assert tail == list(range(25, 30))
    assert empty == []
    # none stored: the first offset; stored in range: kept; stored past the end: the
    # topic was recreated, start again at its first offset.
    assert resumes == (0, 20, 20, 0)


def _offsets_per_partition(cluster) -> dict[int, int]:
    counts: dict[int, int] = {}
    for m in cluster.read(topics.SHOP_EVENTS, idle_s=2.0):
        counts[m.partition] = max(counts.get(m.partition, 0), m.offset + 1)
    return counts


def test_records_the_group_offsets_passed_over_are_applied_once(cluster):
    """Faust's committed offsets ahead of what the table holds, as after Faust skipped
    records at a rebalance: partition 0 half-way (the first record Faust delivers
    shows the gap), partition 1 at its end (nothing arrives: the idle check finds it)."""
    lines = excerpt_lines()
    cluster.replay(lines)
    ends = _offsets_per_partition(cluster)
    assert len(ends) == 4 and min(ends.values()) > 10, ends
    passed_over = {0: ends[0] // 2, 1: ends[1]}
    cluster.commit(settings().app_id, topics.SHOP_EVENTS, passed_over)

    worker = cluster.start_worker(frames="false")
    valid, _ = _valid_by_member(lines)
    cluster.wait_processed(worker, len(lines))
    m = worker.metrics()
    assert m["memberstream_gap_filled_total"] >= sum(passed_over.values())
    assert m["memberstream_events_total"] == sum(map(len, valid.values()))  # none twice
    for member, events in valid.items():
        with urllib.request.urlopen(f"{worker.web_url}/members/{member}") as r:
            state = json.load(r)
        assert state["events"] == len(events), member
        assert state["last_event_id"] == events[-1]["event_id"], member
