"""The fault suite's scenarios at two sizes (issue 16, part 9): `make test` runs them
on the excerpt, `make reliability` (--full-size) on 69,946 Online Retail events
(`memberstream make-log --every 2`) and with 10,000+ poison messages. Each compares
the worker with the in-process replay of the same log (tests/fixtures/expected.py):
member states and distinct alert ids; repeats after a kill are counted and printed.

- kill -9: a worker SIGKILLed again and again during a replay (2 times, full 5);
- poison: every kind of bad message mixed into the log (400, full 10,200);
- rebalance: one worker, a second joins, it leaves again, under a running replay.
"""
from __future__ import annotations

import functools
import threading
import time
from collections import Counter

import pytest

from stream.contract import topics
from stream.domain.parsing import Rejected, parse_record
from stream.tools.launcher import WorkerProcess, wait_until
from stream.tools.replay import _key_and_time
from tests.fixtures.expected import Derived, derive, derived
from tests.fixtures.poison import mixed, poison

from .conftest import ROOT, Cluster, as_in_a_clean_run, excerpt_lines, sigkill

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(1800)]


@functools.cache
def _full_log() -> tuple[list[bytes], Derived]:
    from stream.cli import _make_log

    path = ROOT / ".memberstream" / "logs" / "online-retail-every-2.jsonl"
    if not path.is_file():
        _make_log(path, 2)
    lines = [line for line in path.read_bytes().split(b"\n") if line.strip()]
    return lines, derive(batch=1000, lines=lines)


@pytest.fixture
def fault_log(full_size) -> tuple[list[bytes], Derived]:
    """The log the scenario replays and what a clean run of it decides."""
    return _full_log() if full_size else (excerpt_lines(), derived())


class _Replay(threading.Thread):
    def __init__(self, cluster: Cluster, lines: list[bytes], rate: float):
        super().__init__(daemon=True)
        self.cluster, self.lines, self.rate, self.sent = cluster, lines, rate, None

    def run(self) -> None:
        self.sent = self.cluster.replay(self.lines, rate=self.rate)


def _alert_ids(cluster: Cluster) -> Counter:
    return Counter(a["alert_id"] for a in cluster.read_json(topics.CHURN_ALERTS, idle_s=3.0))


def _ends_as_a_clean_run(cluster: Cluster, replay: _Replay, worker: WorkerProcess, expected: Derived,
                         seconds: float) -> str:
    """The whole log sent, every member as in the clean run, its alert ids all there
    and no other; what was seen, as a line for the report."""
    replay.join(seconds * 3)
    assert replay.sent == len(replay.lines)
    wait_until(lambda: as_in_a_clean_run(worker, expected.states), 600, "every member as in the clean run",
               worker.process, 1.0)
    ids = _alert_ids(cluster)
    assert set(ids) == set(expected.ids(topics.CHURN_ALERTS))
    return (f"{len(expected.states)} members as in the clean run, {len(ids)} distinct alert ids as in it, "
            f"{sum(n - 1 for n in ids.values())} repeated alert messages")


def test_kill_9_repeatedly_during_a_replay_loses_nothing(cluster, fault_log, full_size):
    lines, expected = fault_log
    kills = 5 if full_size else 2
    # The replay outlasts the kills: each worker takes records for a while, then dies.
    seconds = 150 if full_size else 25
    replay = _Replay(cluster, lines, rate=len(lines) / seconds)
    worker = cluster.start_worker()
    replay.start()
    killed_at = []
    for _ in range(kills):
        taken = max(50, len(lines) // (4 * kills))
        wait_until(lambda: worker.processed() >= taken, 120, f"the worker to take {taken} records",
                   worker.process, 0.2)
        assert replay.is_alive(), f"the replay ended before kill {len(killed_at) + 1}: not mid-replay"
        killed_at.append(int(worker.processed()))
        sigkill(worker)
        worker = cluster.start_worker()
    seen = _ends_as_a_clean_run(cluster, replay, worker, expected, seconds)
    print(f"\nkill -9 x{kills} during {len(lines)} events (records each worker had taken: {killed_at}): {seen}")


def test_poison_of_every_kind_is_dead_lettered_with_its_reason(cluster, full_size):
    bad = poison(10_200 if full_size else 400)
    valid = [(_key_and_time(line)[0], line) for line in excerpt_lines()]
    worker = cluster.start_worker()
    n = cluster.send(mixed(valid, bad))
    cluster.wait_processed(worker, n, timeout=600)

    m = worker.metrics()
    clean = derived()
    assert (m["memberstream_events_total"], m["memberstream_duplicates_total"],
            m["memberstream_processing_failures_total"]) == (clean.totals["events"], clean.totals["duplicates"], 0)
    assert m["memberstream_dead_lettered_total"] == clean.totals["dead_lettered"] + len(bad)
    dead = cluster.read(topics.DEAD_LETTER, idle_s=3.0)
    reasons = Counter(dict(d.headers)["error"].decode() for d in dead)
    clean_reasons = Counter(dict(h)["error"].decode() for t, _, _, h in clean.outputs if t == topics.DEAD_LETTER)
    assert reasons == clean_reasons + Counter(code for _, _, code in bad)
    assert {d.value for d in dead} >= {value for _, value, _ in bad}
    assert as_in_a_clean_run(worker, clean.states)
    assert set(_alert_ids(cluster)) == set(clean.ids(topics.CHURN_ALERTS))
    assert worker.health()[1]["status"] == "ok"
    log = worker.process.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "crashed" not in log.lower()  # the agent never restarted
    print(f"\npoison: {len(bad)} messages of {len(set(c for _, _, c in bad))} reasons between "
          f"{len(valid)} records: every one dead-lettered with its reason; members as in the clean run")


def test_rebalance_one_two_one_under_a_replay_loses_nothing(cluster, fault_log, full_size):
    lines, expected = fault_log
    seconds = 90 if full_size else 25
    first = cluster.start_worker()
    replay = _Replay(cluster, lines, rate=len(lines) / seconds)
    replay.start()
    started = time.monotonic()
    wait_until(lambda: first.processed() >= len(lines) // 6, 120, "the first worker to take a sixth",
               first.process, 0.2)
    second = cluster.start_worker()  # 1 -> 2: the partitions are shared, each takes its part
    wait_until(lambda: second.processed() >= 1, 120, "the second worker to take records", second.process, 0.2)
    assert second.metrics()["memberstream_events_total"] >= 1
    # /members on either worker answers for members it does not own (routed to the owner;
    # while the partitions move, an answer may be a 404 for a moment).
    early = list(dict.fromkeys(e.member_id for e in (parse_record(line, _key_and_time(line)[0], 1 << 20)
                                                     for line in lines[:len(lines) // 6])
                               if not isinstance(e, Rejected)))[:20]
    wait_until(lambda: all(w.member(m)["member_id"] == m for m in early for w in (first, second)), 30,
               "both workers to answer for the early members")
    assert replay.is_alive(), "the replay ended before the second worker joined"
    second.process.stop()  # 2 -> 1: it leaves (SIGTERM), its partitions come back
    assert replay.is_alive(), "the replay ended before the second worker left"
    seen = _ends_as_a_clean_run(cluster, replay, first, expected, seconds)
    print(f"\nrebalance 1 -> 2 -> 1 during {len(lines)} events ({time.monotonic() - started:.0f} s): {seen}")
