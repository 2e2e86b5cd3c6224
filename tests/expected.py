"""Expectations DERIVED from the recorded excerpt, not pinned from a past run.

`derived()` replays tests/data/online-retail-excerpt.jsonl through the
MemberProcessor (stream/processor.py) in-process, as the worker gets it:
each line on the Kafka partition the replay (stream/replay.py) chooses for
it (its member_id as the key, aiokafka's default murmur2 partitioner), the
offsets counted per partition in replay order, with the shipped model
(triton_repo/memberstream/1) computed by models.serving.predict in place of
Triton (tests/model_in_process.py). Decisions depend only on event time and
state, so the worker's batching decides the same alerts; the final
recommendation list of a member is the one after their last scoring.

Unkeyed lines (the replay could not read a member_id) go to a random
partition in a real replay; here to partition 0. They are dead letters and
touch no member, so that changes offsets only, never a decision.

Computed once per process (functools.cache): a few seconds of CPU.
"""
from __future__ import annotations

import asyncio
import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import orjson
from aiokafka.partitioner import murmur2

from stream import topics
from stream.policies.recommendation_policy import fallback_items
from stream.processor import MemberProcessor, Record
from stream.replay import _key_and_time
from stream.scorer import ScoringUnavailable
from stream.settings import Settings

EXCERPT = Path(__file__).parent / "data" / "online-retail-excerpt.jsonl"
PARTITIONS = 4  # the Cluster's and Settings' default
# The members whose final recommendations tests/integration/test_pipeline.py pins.
FINAL_TOP5_MEMBERS = ("16781", "13192", "17654")
UNKEYED_PARTITION = 0


def excerpt_lines() -> list[bytes]:
    """The excerpt's lines as the integration tests replay them."""
    return [line for line in EXCERPT.read_bytes().split(b"\n") if line.strip()]


def partition_for(key: Optional[bytes], partitions: int = PARTITIONS) -> Optional[int]:
    """aiokafka's DefaultPartitioner for a keyed record (None: unkeyed, random there)."""
    if key is None:
        return None
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def replay_records(lines: list[bytes], partitions: int = PARTITIONS) -> list[Record]:
    """The lines as the worker receives them: key, partition and per-partition offset
    of each, in replay order."""
    next_offset = [0] * partitions
    out = []
    for line in lines:
        key, _ = _key_and_time(line)
        p = partition_for(key, partitions)
        p = UNKEYED_PARTITION if p is None else p
        out.append(Record(p, next_offset[p], key, line))
        next_offset[p] += 1
    return out


class UnavailableScorer:
    """Triton down: every request fails as TritonScorer's do."""
    model_version = "memberstream@unknown"

    def __init__(self) -> None:
        self.requests = 0

    async def score(self, rows):
        self.requests += 1
        raise ScoringUnavailable("derived: Triton unreachable")


@dataclass(frozen=True)
class Derived:
    """What the processor sent and kept after the whole excerpt."""
    outputs: tuple  # (topic, key, decoded value or raw bytes for a dead letter, headers)
    totals: Counter
    states: dict  # member -> (events, last_event_id)
    # member -> the fallback's own part (their most frequent items, at most k) after the log
    own_items: dict

    def of(self, topic: str) -> list:
        return [value for t, _, value, _ in self.outputs if t == topic]

    @property
    def alerts(self) -> set[tuple[str, str, tuple[str, ...]]]:
        """(member, event_time, reason codes) of every churn alert."""
        return {(a["member_id"], a["event_time"], tuple(r["code"] for r in a["reasons"]))
                for a in self.of(topics.CHURN_ALERTS)}

    def alert_ids(self, member: str) -> set[str]:
        return {a["alert_id"] for a in self.of(topics.CHURN_ALERTS) if a["member_id"] == member}

    @property
    def final_recommendations(self) -> dict[str, dict]:
        """member -> their last recommendation update."""
        return {r["member_id"]: r for r in self.of(topics.RECOMMENDATIONS)}

    def final_top5(self, members=FINAL_TOP5_MEMBERS) -> dict[str, tuple[str, list[str]]]:
        """member -> (based_on, top-5 item ids) of their last recommendation update."""
        final = self.final_recommendations
        return {m: (final[m]["based_on"], [i["item_id"] for i in final[m]["items"][:5]]) for m in members}

    @property
    def segments(self) -> list[tuple]:
        """(member, stage, tier, previous stage, previous tier, event_time) of every change,
        in the order sent."""
        return [(s["member_id"], s["lifecycle_stage"], s["tier"], s["previous_lifecycle_stage"],
                 s["previous_tier"], s["event_time"]) for s in self.of(topics.SEGMENTS)]


def derive(batch: int = 50, scorer=None, checkpoints_served: bool = True,
           settings: Optional[Settings] = None) -> Derived:
    """The excerpt through a MemberProcessor in batches of `batch` records (replay
    order), every pending member scored after each batch. `scorer` None: the shipped
    model in-process, asked for the churn at the checkpoints as the served config
    declares (CHECKPOINT_SILENCE) when `checkpoints_served`."""
    settings = settings or Settings(_env_file=None)
    if scorer is None:
        from .model_in_process import InProcessScorer  # torch: only when the model is needed
        scorer = InProcessScorer(settings.inactivity_checkpoints_days if checkpoints_served else ())
    records = replay_records(excerpt_lines(), settings.partitions)

    async def run():
        proc = MemberProcessor(settings, {}, scorer)
        outputs = []
        for i in range(0, len(records), batch):
            outputs += (await proc.process(records[i:i + batch])).outputs
            while proc.pending:
                outputs += (await proc.score_pending(settings.triton_max_rows)).outputs
        return proc, outputs

    proc, outputs = asyncio.run(run())
    decoded = tuple((o.topic, o.key, o.value if o.topic == topics.DEAD_LETTER else orjson.loads(o.value),
                     tuple(o.headers or ())) for o in outputs)
    states = {m: (s.n_events, s.last_event_id) for m, s in proc.cache.items()}
    own = {m: fallback_items(s, [], settings.recommendations_k) for m, s in proc.cache.items()}
    return Derived(decoded, Counter(proc.totals), states, own)


@functools.cache
def derived() -> Derived:
    """The excerpt with the shipped model (once per process)."""
    return derive()


@functools.cache
def derived_without_scoring() -> Derived:
    """The excerpt with every scoring request failing (Triton unreachable)."""
    return derive(scorer=UnavailableScorer())


def expected_alerts() -> set[tuple[str, str, tuple[str, ...]]]:
    return derived().alerts


def expected_final_top5(members=FINAL_TOP5_MEMBERS) -> dict[str, tuple[str, list[str]]]:
    return derived().final_top5(members)


def expected_alert_id(member: str = "12707") -> str:
    [one] = derived().alert_ids(member)
    return one
