"""The bound on the worker's decoded member states (stream/processing/member_cache.py):
who may leave the cache, and that leaving changes no state, alert, recommendation
or segment change, only what it costs (checkpoints scored by request)."""
import asyncio
import random

import numpy as np
import orjson

from stream.contract import topics
from stream.domain.member_state import MemberState
from stream.processing.member_cache import trim
from tests.fixtures.events import DAY_MS, T0, event, messages
from tests.fixtures.fakes import FakeSender, SequenceScorer
from tests.fixtures.workers import CHANGELOG, fake_worker, run, settle


def _cache(*members: str, pending=()) -> dict[str, MemberState]:
    out = {}
    for m in members:
        out[m] = MemberState(m, 0)
        out[m].pending_score = m in pending
    return out


def test_the_least_recently_written_leave_first_and_never_the_pending_or_the_published():
    cache = _cache("a", "b", "c", "d", "e", "f", pending="b")
    written = {"a": cache["a"], "z": MemberState("z", 0)}  # z: written, not cached (revoked): stays out
    assert trim(cache, written, 3, publishing={"c"}) == 3
    # a moved to the recent end; b pending and c being published: kept, and moved there
    # too (in use); d, e, f were next.
    assert list(cache) == ["a", "b", "c"]


def test_no_bound_and_under_the_bound_nobody_leaves_and_the_order_follows_the_writes():
    cache = _cache("a", "b", "c")
    assert trim(cache, {"a": cache["a"]}, 0, publishing=()) == 0
    assert list(cache) == ["a", "b", "c"]  # no bound: not even reordered
    assert trim(cache, {"a": cache["a"]}, 3, publishing=()) == 0
    assert list(cache) == ["b", "c", "a"]
    stale = MemberState("b", 0)  # a cut's state that is no longer the cached one is not moved
    assert trim(cache, {"b": stale}, 3, publishing=()) == 0
    assert list(cache) == ["b", "c", "a"]


def test_when_every_member_is_busy_the_cache_stays_over_its_bound():
    cache = _cache("a", "b", "c", pending="ab")
    assert trim(cache, {}, 1, publishing={"c"}) == 0
    assert list(cache) == ["a", "b", "c"]


def test_a_trim_looks_at_most_scan_members_past_those_it_drops():
    """16 pending members in front of 4 that may leave, a bound of 18: each trim looks
    at 2 + 2 members, moves the busy ones it met to the recent end, and drops the
    free ones it reaches, until the cache is within its bound."""
    members = [f"m{i:02}" for i in range(20)]
    cache = _cache(*members, pending=set(members[:16]))
    assert trim(cache, {}, 18, publishing=(), scan=2) == 0
    assert list(cache) == members[4:] + members[:4]
    for _ in range(3):
        assert trim(cache, {}, 18, publishing=(), scan=2) == 0
    assert list(cache)[:4] == members[16:]  # the free ones in front now
    assert trim(cache, {}, 18, publishing=(), scan=2) == 2
    assert list(cache) == members[18:] + members[:16]


class SilenceScorer(SequenceScorer):
    """Churn by the row's silence and sequence length, the same whether a row asks at a
    checkpoint's silence or the answer gives the churn at every checkpoint (as the
    served model does: docs/DESIGN.md section 5)."""

    def __init__(self, days) -> None:
        super().__init__()
        self.silences = [d * 86400.0 for d in days]

    @staticmethod
    def _churn(length: int, silence_s: float) -> float:
        return min(0.95, 0.2 + silence_s / (30 * 86400.0) + 0.01 * length)

    async def score(self, rows):
        scores = await super().score(rows)
        lengths = [sum(1 for i in r.items if i) for r in rows]
        scores.churn = np.array([self._churn(n, r.silence_s) for n, r in zip(lengths, rows)], np.float32)
        scores.churn_at = np.array([[self._churn(n, s) for s in self.silences] for n in lengths], np.float32)
        return scores


def _stream(seed: int, members: int = 14, events: int = 360) -> list[bytes]:
    """Events of `members` members in event-time order over about four months: some
    members fall silent for weeks, so their inactivity checkpoints come due."""
    rng = random.Random(seed)
    ts, out, counts = T0, [], {}
    for _ in range(events):
        ts += rng.choice((60_000, 3_600_000, DAY_MS // 3, DAY_MS))
        m = f"m{min(int(rng.expovariate(0.25)), members - 1)}"
        counts[m] = counts.get(m, 0) + 1
        out.append(event(m, counts[m], item=f"i{rng.randrange(25)}", ts=ts,
                         kind=rng.choice(("view", "view", "add_to_cart", "purchase"))))
    return out


def _run(values: list[bytes], bound: int):
    """The values through a worker in batches of 9, each followed by its members'
    scoring and a commit: (outputs by topic, the store, the worker's totals, the
    largest cache seen after a commit)."""
    sender = FakeSender()
    w = fake_worker(frames=False, sender=sender, member_cache_max=bound)
    w.processor.scorer = w.scorer = SilenceScorer(w.settings.inactivity_checkpoints_days)
    largest = 0

    async def go():
        nonlocal largest
        await w.start()
        for start in range(0, len(values), 9):
            await w.take(messages(0, start, values[start:start + 9]))
            await w.decisions.drained()
            while w.processor.pending:
                await w.publish(await w.processor.score_pending(1024))
            await w.commit.commit()
            largest = max(largest, len(w.processor.cache))

    run(go())
    outputs = {}
    for topic, key, value, _, _ in sender.messages():
        if topic != CHANGELOG:
            body = orjson.loads(value)
            body.pop("emitted_at", None)  # the wall clock
            outputs.setdefault(topic, []).append((key, body))
    return outputs, dict(w.store), w.processor.totals, largest


def test_members_that_leave_the_cache_decide_as_if_they_had_stayed():
    """The same stream with every member kept, and with 3 kept decoded: the same
    states in the store and the same alerts, recommendations and segment changes,
    in the same order; the bounded worker scored by request the checkpoints whose
    churn the other knew from its members' last scorings."""
    for seed in range(3):
        values = _stream(seed)
        kept, kept_store, kept_totals, kept_largest = _run(values, 0)
        bounded, store, totals, largest = _run(values, 3)
        assert kept_largest == 14 and largest <= 3 and totals["members_evicted"] > 50
        assert store == kept_store
        for topic in (topics.CHURN_ALERTS, topics.RECOMMENDATIONS, topics.SEGMENTS):
            assert bounded[topic] == kept[topic], topic
        assert len(kept[topics.CHURN_ALERTS]) > 0 and len(kept[topics.RECOMMENDATIONS]) > 50
        assert kept_totals["checkpoints_known"] > 0
        assert totals["checkpoints_known"] < kept_totals["checkpoints_known"]
        assert (totals["checkpoint_rows"] + totals["checkpoints_known"]
                == kept_totals["checkpoint_rows"] + kept_totals["checkpoints_known"])


class GatedSender(FakeSender):
    """A sender whose `send` of a recommendation update waits for `gate` before it
    returns (a producer waiting for metadata or buffer space)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def send(self, messages):
        messages = list(messages)
        if any(m[0] == topics.RECOMMENDATIONS for m in messages):
            await self.gate.wait()
        return await super().send(messages)


def test_a_member_whose_scoring_answer_is_being_published_stays_decoded_through_a_commit():
    """The fault: a commit cuts and trims while a scoring's answer waits in the
    producer, not yet in the commit's states. The member must stay decoded, or its
    next event would start from its stored state, without that answer."""
    sender = GatedSender()
    w = fake_worker(frames=False, sender=sender, member_cache_max=1)

    async def go():
        await w.start()
        await w.take(messages(0, 0, [event("a", 0, ts=T0)]))
        await w.decisions.drained()
        await w.commit.commit()  # a's event stored; a pending
        scoring = asyncio.ensure_future(w.publish(await w.processor.score_pending(1024)))
        await settle()
        assert not scoring.done() and not w.processor.cache["a"].pending_score  # answered, held in send
        await w.take(messages(0, 1, [event("b", 0, ts=T0 + 1)]))
        await w.commit.commit()  # over the bound: a is being published, b pending
        assert set(w.processor.cache) == {"a", "b"}
        sender.gate.set()
        await scoring
        await w.take(messages(0, 2, [event("a", 1, ts=T0 + 2)]))
        await w.decisions.drained()
        await w.publish(await w.processor.score_pending(1024))  # the same answer again
        await w.commit.commit()

    run(go())
    # One update of a's: its second scoring gave the same list.
    (_, _, value, _, _), = [m for m in sender.messages(topics.RECOMMENDATIONS) if m[1] == b"a"]
    sent = [(i["item_id"], i["score"]) for i in orjson.loads(value)["items"]]
    stored = MemberState.from_bytes(w.store[b"a"])
    assert stored.n_events == 2 and not stored.pending_score
    assert [(i, round(x, 4)) for i, x in stored.recommendations] == [(i, round(x, 4)) for i, x in sent] != []


def test_a_member_who_left_comes_back_equal_but_without_what_lives_in_memory_only():
    """A scored member dropped past the bound is decoded equal to the state that left,
    with neither the churn at its checkpoints nor its Surprise (docs/DESIGN.md)."""
    w = fake_worker(frames=False, member_cache_max=1)
    w.processor.scorer = w.scorer = SilenceScorer(w.settings.inactivity_checkpoints_days)

    async def go():
        await w.start()
        for n, member in enumerate(("a", "b")):
            await w.take(messages(0, n, [event(member, 0, ts=T0 + n)]))
            await w.decisions.drained()
            await w.publish(await w.processor.score_pending(1024))
            if member == "a":
                left = w.processor.cache["a"]
            await w.commit.commit()
        return left

    left = run(go())
    assert left.churn_at is not None and left.surprise is not None
    assert list(w.processor.cache) == ["b"] and w.processor.totals["members_evicted"] == 1
    back = w.processor.state("a")
    assert back == left and back is not left
    assert back.churn_at is None and back.surprise is None
