"""Real parts for the integration tests: Triton once per session, a fresh Tansu
broker per test, workers as real processes. Everything is stopped by PID."""
from __future__ import annotations

import asyncio
import os
import signal
import urllib.error
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.tools.launcher import (Broker, LaunchError, Triton, WorkerProcess, start_broker, start_triton,
                                   start_worker, wait_until, worker_env)
from stream.contract import topics
from stream.domain.member_state import MemberState
from stream.kafka.admin import ensure_topics
from stream.processing import keys
from stream.tools.replay import replay
from stream.settings import Settings
from stream.tools.tail import messages
from tests.fixtures.expected import PER_MEMBER_RECOMMENDATIONS

ROOT = Path(__file__).parents[2]
EXCERPT = ROOT / "tests" / "data" / "online-retail-excerpt.jsonl"


@pytest.fixture(scope="session")
def triton(tmp_path_factory) -> Triton:
    server = start_triton(ROOT / "triton_repo", "memberstream", tmp_path_factory.mktemp("triton"))
    yield server
    server.process.stop()


@pytest.fixture
def broker(tmp_path) -> Broker:
    b = start_broker(tmp_path / "broker")
    yield b
    b.process.stop()


class Cluster:
    """One broker, the session's Triton, and the workers a test starts."""

    def __init__(self, broker: Broker, triton: Triton, work_dir: Path, partitions: int = 4):
        self.broker, self.triton, self.work_dir = broker, triton, work_dir
        self.partitions = partitions
        self.workers: list[WorkerProcess] = []

    def env(self, **extra: object) -> dict[str, str]:
        return worker_env(self.broker, self.triton, self.partitions,
                          **{"state_dir": self.work_dir / "state", **PER_MEMBER_RECOMMENDATIONS, **extra})

    def start_worker(self, **extra: object) -> WorkerProcess:
        w = start_worker(self.env(**extra), self.work_dir, name=f"worker-{len(self.workers) + 1}")
        w.token = extra.get("api_token")
        self.workers.append(w)
        return w

    def replay(self, lines: list[bytes], rate: float | None = None) -> int:
        stats = asyncio.run(replay(Path("-"), self.broker.bootstrap, self.partitions, rate=rate, lines=lines))
        return stats.sent

    def send(self, records: list[tuple[bytes | None, bytes]], topic: str = topics.SHOP_EVENTS) -> int:
        """(key, value) records to `topic` (shop.events) as given, in order (the replay keys
        by member id; this does not)."""
        async def run():
            await ensure_topics(self.broker.bootstrap, self.partitions, names=topics.ALL)
            producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap, acks="all")
            await producer.start()
            try:
                sent = [await producer.send(topic, value, key=key) for key, value in records]
                await asyncio.gather(*sent)
            finally:
                await producer.stop()
        asyncio.run(run())
        return len(records)

    def wait_processed(self, worker: WorkerProcess, n: int, timeout: float = 120) -> None:
        wait_until(lambda: worker.settled(n), timeout, f"worker to take {n} records and score them",
                   worker.process, 0.2)

    def wait_shared(self, workers: list[WorkerProcess], timeout: float = 60.0) -> list[set[int]]:
        """Until every worker is ready (200) and they own disjoint partitions that cover
        all: each one's. Fails with each worker's last /health (a worker whose recovery
        stalled after a join showed as `starting` with its partitions, docs/RELIABILITY.md)."""
        last: list[tuple] = [(None, {})] * len(workers)

        def done() -> bool:
            for i, w in enumerate(workers):
                last[i] = w.health()
            owned = [set(body["partitions"]) for code, body in last if code == 200]
            return (len(owned) == len(workers) and all(owned)
                    and sum(map(len, owned)) == len(set().union(*owned)) == self.partitions)
        try:
            wait_until(done, timeout, "the workers to share the partitions", interval=0.2)
        except LaunchError:
            pytest.fail(f"the workers did not share the partitions in {timeout:.0f} s; "
                        f"their last /health (code, body): {last}")
        return [set(body["partitions"]) for _, body in last]

    def read(self, topic: str, count: int | None = None, idle_s: float = 2.0) -> list:
        async def collect():
            return [m async for m in messages(self.broker.bootstrap, topic, True, count, idle_s)]
        return asyncio.run(collect())

    def read_json(self, topic: str, count: int | None = None, idle_s: float = 2.0) -> list[dict]:
        return [orjson.loads(m.value) for m in self.read(topic, count, idle_s)]

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """The group's committed offset per partition of `topic` (-1: none)."""
        async def run():
            c = AIOKafkaConsumer(bootstrap_servers=self.broker.bootstrap, group_id=group, enable_auto_commit=False)
            await c.start()
            try:
                offsets = {p: await c.committed(TopicPartition(topic, p)) for p in range(self.partitions)}
                return {p: -1 if offset is None else offset for p, offset in offsets.items()}
            finally:
                await c.stop()
        return asyncio.run(run())

    def commit(self, group: str, topic: str, offsets: dict[int, int]) -> None:
        """Commit `offsets` for `group` on `topic` (the group must have no live members)."""
        async def run():
            c = AIOKafkaConsumer(bootstrap_servers=self.broker.bootstrap, group_id=group, enable_auto_commit=False)
            await c.start()
            try:
                tps = {p: TopicPartition(topic, p) for p in offsets}
                c.assign(list(tps.values()))
                await c.commit({tps[p]: o for p, o in offsets.items()})
            finally:
                await c.stop()
        asyncio.run(run())

    def ends(self, topic: str) -> dict[int, int]:
        """True end offset per partition, by reading the topic (Tansu's ListOffsets(LATEST)
        is short of it: docs/broker.md, quirk 2)."""
        ends = {p: 0 for p in range(self.partitions)}
        for m in self.read(topic, idle_s=1.0):
            ends[m.partition] = max(ends[m.partition], m.offset + 1)
        return ends

    def changelog(self, app_id: str = "memberstream") -> tuple[dict[str, MemberState], dict[int, int]]:
        """The newest member states and input offsets in the members changelog."""
        states, inputs = {}, {}
        for m in self.read(f"{app_id}-members-changelog", idle_s=1.0):
            if m.key.startswith(keys.INPUT_PREFIX):
                inputs[int(m.key[len(keys.INPUT_PREFIX):])] = keys.read_input_value(m.value)[0]
            elif not keys.is_bookkeeping(m.key):
                states[m.key.decode()] = MemberState.from_bytes(m.value)
        return states, inputs

    def stop(self) -> None:
        for w in reversed(self.workers):
            w.process.stop()


@pytest.fixture
def cluster(broker, triton, tmp_path) -> Cluster:
    c = Cluster(broker, triton, tmp_path)
    yield c
    c.stop()


def excerpt_lines() -> list[bytes]:
    return [line for line in EXCERPT.read_bytes().split(b"\n") if line.strip()]


def as_in_a_clean_run(worker: WorkerProcess, states: dict) -> bool:
    """Every member's events and newest event id as in a clean run (`states`: member ->
    (events, newest event id), tests/fixtures/expected.py), and scored."""
    for member, (events, last) in states.items():
        try:
            state = worker.member(member)
        except urllib.error.HTTPError:
            return False
        if (state["events"], state["last_event_id"], state["scoring_pending"]) != (events, last, False):
            return False
    return True


def settings() -> Settings:
    return Settings(_env_file=None)


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on; None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of the processes whose parent is `pid`."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and int(stat[1]) == pid:
                out.append((int(entry), stat[19]))
    return out


def _alive(pid: int, started: str) -> bool:
    """The same process (same start time) still runs (a zombie does not count)."""
    stat = _stat(pid)
    return stat is not None and stat[19] == started and stat[0] != "Z"


def sigkill(worker: WorkerProcess, timeout: float = 15.0) -> None:
    """SIGKILL the worker by its PID (a crash: no flush, no commit, no goodbye), then
    wait until its children (the batcher) are gone too; a child still there after
    `timeout` is SIGKILLed by its PID and the wait fails."""
    pid = worker.process.popen.pid
    children = _children(pid)
    os.kill(pid, signal.SIGKILL)
    worker.process.popen.wait(10)
    try:
        wait_until(lambda: not any(_alive(*c) for c in children), timeout,
                   f"children {[c[0] for c in children]} of the killed worker {pid} to exit")
    except LaunchError:
        for child, started in children:
            if _alive(child, started):
                os.kill(child, signal.SIGKILL)
        raise
