"""Scoring decoupled from the event rate (stream/processing/processor.py), with the shipped
model computed in-process (models/serving.predict) in place of Triton."""
import asyncio

import numpy as np
import pytest
import orjson

from stream.contract import topics
from stream.processing.processor import MemberProcessor
from stream.processing.records import Record
from stream.scoring.scores import ScoringUnavailable
from stream.settings import Settings
from stream.tools.replay import _key_and_time

from tests.fixtures.expected import PER_MEMBER_RECOMMENDATIONS
from tests.fixtures.fakes import ConstantScorer, FlakyScorer
from tests.fixtures.model import InProcessScorer
from tests.fixtures.paths import EXCERPT

T0 = 1_291_191_960_000


def records(events, start=0):
    out = []
    for n, (member, i, item) in enumerate(events):
        value = orjson.dumps({"event_id": f"{member}-{i}", "member_id": member, "type": "purchase",
                              "item_id": item, "ts": T0 + i * 60_000, "price": 1.0, "session_id": f"s{i}"})
        out.append(Record(0, start + n, member.encode(), value))
    return out


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def test_members_are_scored_once_per_request_however_many_events_they_sent():
    async def go():
        proc = MemberProcessor(Settings(_env_file=None, **PER_MEMBER_RECOMMENDATIONS), {}, InProcessScorer())
        batch = [("a", i, item) for i, item in enumerate(["85123A", "71053", "84406B", "22752", "21730"])]
        result = await proc.process(records(batch + [("b", 9, "22633")]))
        assert result.counts["events"] == 6 and set(result.changed) == {"a", "b"}
        assert list(proc.pending) == ["a", "b"]
        assert proc.scorer.requests == []  # events alone never wait on the model
        scored = await proc.score_pending(max_rows=1024)
        assert proc.scorer.requests == [2] and not proc.pending and not proc.pending_ready.is_set()
        updates = [orjson.loads(o.value) for o in scored.outputs]
        assert sorted((u["member_id"], u["based_on"]) for u in updates) == [("a", "a-4"), ("b", "b-9")]
        assert all(len(u["items"]) == 10 and not u["fallback"] for u in updates)
        assert not proc.cache["a"].pending_score and proc.cache["a"].churn_probability is not None
    run(go())


def test_a_member_that_moved_on_during_its_request_is_not_published_stale():
    async def go():
        scorer = InProcessScorer()
        proc = MemberProcessor(Settings(_env_file=None, **PER_MEMBER_RECOMMENDATIONS), {}, scorer)
        await proc.process(records([("a", 1, "85123A"), ("b", 2, "71053")]))
        scorer.gate.clear()
        in_flight = asyncio.ensure_future(proc.score_pending(max_rows=1024))
        await asyncio.sleep(0)  # the request for a@1 and b@2 is out
        await proc.process(records([("a", 3, "84406B")], start=2))  # a moves on meanwhile
        scorer.gate.set()
        first = await in_flight
        assert [orjson.loads(o.value)["based_on"] for o in first.outputs] == ["b-2"]
        assert list(proc.pending) == ["a"] and proc.cache["a"].pending_score
        second = await proc.score_pending(max_rows=1024)
        assert [orjson.loads(o.value)["based_on"] for o in second.outputs] == ["a-3"]
        assert not proc.pending
    run(go())


def test_a_checkpoint_row_of_a_pending_member_also_answers_its_scoring():
    """a's 7-day checkpoint comes due (b's event is 8 days later) before a was scored:
    the checkpoint's row, a's newest sequence, also publishes a's recommendation
    update (the items do not depend on the silence), and a is not scored again."""
    async def go(failing: bool):
        proc = MemberProcessor(Settings(_env_file=None, **PER_MEMBER_RECOMMENDATIONS), {}, InProcessScorer())
        eight_days = 8 * 24 * 60  # records() puts event i at i minutes
        if failing:
            proc.scorer.score = _unavailable
        result = await proc.process(records([("a", 0, "85123A"), ("b", eight_days, "71053")]))
        return proc, result

    async def reference():
        proc = MemberProcessor(Settings(_env_file=None, **PER_MEMBER_RECOMMENDATIONS), {}, InProcessScorer())
        await proc.process(records([("a", 0, "85123A")]))
        return [orjson.loads(o.value) for o in (await proc.score_pending(max_rows=1024)).outputs]

    proc, result = run(go(failing=False))
    assert proc.scorer.requests == [1] and result.counts["checkpoint_rows"] == 1
    assert result.counts["checkpoint_updates"] == 1 == result.counts["recommendation_updates"]
    [update] = [orjson.loads(o.value) for o in result.outputs if o.topic == topics.RECOMMENDATIONS]
    assert (update["member_id"], update["based_on"]) == ("a", "a-0")
    assert list(proc.pending) == ["b"] and not proc.cache["a"].pending_score
    assert proc.cache["a"].churn_probability is not None  # the checkpoint's
    run(proc.score_pending(max_rows=1024))
    assert proc.scorer.requests == [1, 1] and not proc.pending
    [own] = run(reference())  # a scored at silence 0 on its own
    assert [i["item_id"] for i in update["items"]] == [i["item_id"] for i in own["items"]]
    assert np.allclose([i["score"] for i in update["items"]], [i["score"] for i in own["items"]], atol=1e-5)
    # Scoring unavailable: the checkpoint goes back to the schedule, a back to pending.
    proc, result = run(go(failing=True))
    assert result.counts["scoring_failures"] == 1 and result.counts["recommendation_updates"] == 0
    assert set(proc.pending) == {"a", "b"} and proc.cache["a"].pending_score


async def _unavailable(rows):
    raise ScoringUnavailable("test: Triton down")


def test_pending_members_survive_a_restart_through_the_table():
    async def go():
        store = {}
        proc = MemberProcessor(Settings(_env_file=None, **PER_MEMBER_RECOMMENDATIONS), store, InProcessScorer())
        result = await proc.process(records([("a", 1, "85123A")]))
        store.update({m.encode(): s.to_bytes() for m, s in result.changed.items()})
        restarted = MemberProcessor(Settings(_env_file=None, **PER_MEMBER_RECOMMENDATIONS), store, InProcessScorer())
        await restarted.process(records([("b", 2, "71053")], start=1))  # first batch after recovery
        assert list(restarted.pending) == ["a", "b"]
    run(go())


def test_a_redelivery_longer_than_the_hash_window_is_dropped_by_offset():
    """After a rebalance a member's records may come again, more than 50 of them."""
    async def go():
        proc = MemberProcessor(Settings(_env_file=None, **PER_MEMBER_RECOMMENDATIONS), {}, InProcessScorer())
        first = records([("a", i, "85123A") for i in range(80)])
        await proc.process(first)
        again = await proc.process(first)  # the same 80 records, same offsets
        assert again.counts["duplicates"] == 80 and again.counts["events"] == 0
        assert proc.cache["a"].n_events == 80
        # A recreated topic starts its offsets again, with newer events: applied.
        newer = await proc.process(records([("a", 200, "71053")]))
        assert newer.counts["events"] == 1 and proc.cache["a"].n_events == 81
    run(go())


def test_checkpoints_of_members_scored_since_their_last_event_need_no_request():
    """With churn at every checkpoint from the members' last scoring, the excerpt's
    checkpoints are decided without requests of their own, and decide the same alerts
    and segment changes as scoring each checkpoint."""
    lines = [line for line in EXCERPT.read_bytes().splitlines() if line.strip()]
    settings = Settings(_env_file=None, **PER_MEMBER_RECOMMENDATIONS)

    async def go(scorer):
        proc = MemberProcessor(settings, {}, scorer)
        outputs = []
        for i in range(0, len(lines), 50):
            batch = [Record(0, i + n, _key_and_time(line)[0], line) for n, line in enumerate(lines[i:i + 50])]
            outputs += (await proc.process(batch)).outputs
            while proc.pending:
                await proc.score_pending(max_rows=1024)
        decided = [(o.topic, o.key, orjson.loads(o.value)) for o in outputs if o.topic != topics.DEAD_LETTER]
        return proc.totals, [(t, k, {f: v for f, v in d.items() if f != "emitted_at"}) for t, k, d in decided]

    plain, plain_out = run(go(InProcessScorer()))
    known, known_out = run(go(InProcessScorer(settings.inactivity_checkpoints_days)))
    assert plain["checkpoints_known"] == 0 and plain["checkpoint_rows"] > 100
    # Those left came due in the batch of the member's newest event, before its scoring.
    assert known["checkpoints_known"] + known["checkpoint_rows"] == plain["checkpoint_rows"]
    assert known["checkpoints_known"] > 0.8 * plain["checkpoint_rows"], (known, plain)
    assert plain["alerts"] >= 3 and plain["segment_changes"] > 30
    assert {t for t, _, _ in plain_out} >= {topics.CHURN_ALERTS, topics.SEGMENTS}
    assert same_outputs(known_out, plain_out)


def same_outputs(a, b) -> bool:
    """Equal outputs, the recommended items' scores to 1e-5: a request of other rows
    computes them in other batch shapes (in-process batches differ in the last bits)."""
    def scores(out):
        return [[i.pop("score") for i in d["items"]] if t == topics.RECOMMENDATIONS
                else [f.pop("contribution") for f in d.get("factors", ())] for t, _, d in out]

    a, b = ([(t, k, orjson.loads(orjson.dumps(d))) for t, k, d in out] for out in (a, b))  # copies
    sa, sb = scores(a), scores(b)
    return a == b and all(np.allclose(x, y, atol=1e-5, rtol=0) for x, y in zip(sa, sb))


def test_a_record_whose_processing_raises_is_dead_lettered_and_the_batch_goes_on():
    """A stored state the codec cannot read (as when an id once reached a bookkeeping
    key): that member's event goes to the dead-letter topic with the error, the others
    of the batch are applied."""
    store = {b"broken": b"\x01not a member state"}
    proc = MemberProcessor(Settings(_env_file=None, **PER_MEMBER_RECOMMENDATIONS), store, InProcessScorer())
    batch = records([("a", 0, "85123A"), ("broken", 1, "71053"), ("b", 2, "84406B")])
    result = run(proc.process(batch))
    dead = [o for o in result.outputs if o.topic == topics.DEAD_LETTER]
    assert [o.value for o in dead] == [batch[1].value] and dead[0].key == b"broken"
    headers = dict(dead[0].headers)
    assert headers["error"] == b"PROCESSING_FAILED" and headers["source_offset"] == b"1"
    assert b"Error" in headers["error_detail"].split(b":")[0]  # the exception type, then its text
    assert (result.counts["events"], result.counts["dead_lettered"], result.counts["processing_failures"]) == (2, 1, 1)
    assert set(result.changed) == {"a", "b"} and proc.state("a").n_events == proc.state("b").n_events == 1


def test_members_served_fallbacks_stay_pending_and_get_the_model_after_an_outage():
    """Any failure (refused, a timeout, an answer of the wrong shape, a bug) answers
    a list without the model (the member's own items) and keeps the member pending; the
    next scoring after the backoff answers the model's items (after the member's own:
    half the list may be those)."""
    failures = [ConnectionRefusedError("refused"), asyncio.TimeoutError(), "short", KeyError("TOP_ITEMS")]
    settings = Settings(_env_file=None, scoring_retry_base_s=0.01, **PER_MEMBER_RECOMMENDATIONS)

    async def go():
        scorer = FlakyScorer(failures, items=("m1", "m2"))
        proc = MemberProcessor(settings, {}, scorer)
        await proc.process(records([("a", 0, "85123A"), ("b", 1, "71053")]))
        updates = []
        while scorer.failures:
            await proc.breaker.until_retry()
            result = await proc.score_pending(max_rows=1024)
            updates += [orjson.loads(o.value) for o in result.outputs]
            assert set(proc.pending) == {"a", "b"} and proc.cache["a"].pending_score
        assert proc.breaker.state == "open" and proc.totals["scoring_failures"] == len(failures)
        await proc.breaker.until_retry()
        result = await proc.score_pending(max_rows=1024)
        updates += [orjson.loads(o.value) for o in result.outputs]
        return proc, updates

    proc, updates = run(go())
    # One fallback update each (the same fallback is not sent again), then the model's.
    assert [(u["member_id"], u["fallback"]) for u in updates] == [("a", True), ("b", True), ("a", False), ("b", False)]
    assert [i["item_id"] for i in updates[-1]["items"]] == ["71053", "m1", "m2"]
    assert [i["reason"] for i in updates[-1]["items"]] == ["BOUGHT_BEFORE", "SEQUENCE_MODEL", "SEQUENCE_MODEL"]
    assert not proc.pending and proc.breaker.state == "closed" and not proc.cache["b"].recommendations_fallback


class SilenceScorer(ConstantScorer):
    """Churn grows with the silence alone (1 at 30 days): every alert's top factor is it."""

    async def score(self, rows):
        scores = await super().score(rows)
        scores.churn = np.array([min(1.0, r.silence_s / (30 * 86400.0)) for r in rows], np.float32)
        return scores


def _silent_member_then_time_passes():
    """Member a buys three times, then member b's events move event time 31 days on."""
    day = 24 * 60  # records() counts minutes
    return records([("a", 0, "85123A"), ("a", 1, "71053"), ("a", 2, "84406B")]
                   + [("b", d * day, "22633") for d in range(1, 32)])


def test_a_churn_alert_carries_the_top_factors_behind_the_score():
    async def go(scorer):
        proc = MemberProcessor(Settings(_env_file=None, **PER_MEMBER_RECOMMENDATIONS), {}, scorer)
        result = await proc.process(_silent_member_then_time_passes())
        return [orjson.loads(o.value) for o in result.outputs if o.topic == topics.CHURN_ALERTS], result, scorer
    alerts, _, scorer = run(go(SilenceScorer()))
    [alert] = [a for a in alerts if a["member_id"] == "a"]
    assert alert["reasons"][0]["code"] == "INACTIVE_21D" and alert["churn_probability"] == 0.7
    assert alert["factors"][0]["code"] == "MODEL_SILENCE"
    assert alert["factors"][0]["contribution"] == pytest.approx(0.7, abs=1e-4)
    assert "21 days of silence" in alert["factors"][0]["text"]
    # The checkpoint rows, then one request of the alerts' occlusion variants.
    assert len(scorer.requests) == 2
    # With the shipped model: the factors are what occluding each part changes.
    alerts, _, _ = run(go(InProcessScorer()))
    for a in alerts:
        assert all(f["contribution"] >= 0.01 for f in a["factors"]) and len(a["factors"]) <= 3
        assert [f["contribution"] for f in a["factors"]] == sorted((f["contribution"] for f in a["factors"]),
                                                                   reverse=True)


def test_an_alert_whose_factors_cannot_be_scored_goes_out_without_them():
    class FailsSecond(SilenceScorer):
        async def score(self, rows):
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == 2:
                raise ScoringUnavailable("triton went away")
            return await super().score(rows)

    async def go():
        proc = MemberProcessor(Settings(_env_file=None, **PER_MEMBER_RECOMMENDATIONS), {}, FailsSecond())
        return await proc.process(_silent_member_then_time_passes())
    result = run(go())
    [alert] = [orjson.loads(o.value) for o in result.outputs
               if o.topic == topics.CHURN_ALERTS and o.key == b"a"]
    assert alert["factors"] == [] and alert["reasons"][0]["code"] == "INACTIVE_21D"
    assert result.counts["explanations_unavailable"] >= 1
