"""Output ids across a crash (stream/domain/message_id.py): the excerpt through a processor
that loses its unflushed work and a replacement that re-applies it from the stored states,
against one clean run. A consumer that drops repeats by id ends with the clean run's
messages exactly: no id missing, none extra, a repeat always the same message."""
import asyncio

import orjson

from stream.contract import topics
from stream.processing.processor import MemberProcessor
from stream.processing.records import Record
from stream.settings import Settings

from tests.fixtures.expected import PER_MEMBER_RECOMMENDATIONS, UnavailableScorer, excerpt_lines, replay_records
from tests.fixtures.fakes import ConstantScorer, SequenceScorer

SETTINGS = Settings(_env_file=None, **PER_MEMBER_RECOMMENDATIONS)
BATCH = 50
ID_FIELD = {topics.CHURN_ALERTS: "alert_id", topics.RECOMMENDATIONS: "update_id",
            topics.SEGMENTS: "change_id", topics.ANOMALIES: "anomaly_id"}


async def _run(proc: MemberProcessor, records: list[Record], flush_until: int = -1) -> list:
    """The records in batches, every pending member scored after each; the states a batch
    and its scorings changed written to the store while fewer than `flush_until` records
    were taken (-1: always)."""
    outputs = []
    for start in range(0, len(records), BATCH):
        result = await proc.process(records[start:start + BATCH])
        outputs += result.outputs
        changed = dict(result.changed)
        while proc.pending:
            scored = await proc.score_pending(SETTINGS.triton_max_rows)
            outputs += scored.outputs
            changed.update(scored.changed)
        if flush_until < 0 or start + BATCH <= flush_until:
            proc.store.update({m.encode(): s.to_bytes() for m, s in changed.items()})
    return outputs


def _by_id(outputs) -> list[tuple[str, str, object]]:
    """(topic, id, message less its wall-clock time) of every output, in order sent."""
    out = []
    for o in outputs:
        if o.topic == topics.DEAD_LETTER:
            headers = dict(o.headers)
            out.append((o.topic, headers.pop("dead_letter_id").decode(),
                        (o.key, o.value, {k: v for k, v in headers.items() if k != "rejected_at"})))
        else:
            message = orjson.loads(o.value)
            message.pop("emitted_at", None)
            out.append((o.topic, message[ID_FIELD[o.topic]], message))
    return out


def test_ids_sent_again_after_a_crash_are_the_clean_runs_and_name_the_same_messages():
    records = replay_records(excerpt_lines())
    clean = _by_id(asyncio.run(_run(MemberProcessor(SETTINGS, {}, SequenceScorer()), records)))
    # A worker that flushed its first 300 records and went on to 600 before it died; its
    # replacement recovers the stored states and re-applies from record 300 on.
    store: dict = {}
    lost = asyncio.run(_run(MemberProcessor(SETTINGS, store, SequenceScorer()), records[:600], flush_until=300))
    again = asyncio.run(_run(MemberProcessor(SETTINGS, store, SequenceScorer()), records[300:]))
    crashed = _by_id(lost + again)

    def counts(sent):
        return {t: len([1 for topic, _, _ in sent if topic == t]) for t in (*ID_FIELD, topics.DEAD_LETTER)}

    # Every message of the clean run has an id of its own.
    assert counts(clean) == {topics.CHURN_ALERTS: 45, topics.RECOMMENDATIONS: 68, topics.SEGMENTS: 117,
                             topics.ANOMALIES: 5, topics.DEAD_LETTER: 22}
    assert len({(t, i) for t, i, _ in clean}) == len(clean)
    # The crashed run sent some of them twice...
    assert counts(crashed) == {topics.CHURN_ALERTS: 57, topics.RECOMMENDATIONS: 86, topics.SEGMENTS: 147,
                               topics.ANOMALIES: 6, topics.DEAD_LETTER: 28}
    # ...each time with the id and content the clean run sent it with.
    expected = {(t, i): m for t, i, m in clean}
    assert {(t, i) for t, i, _ in crashed} == set(expected)
    assert all(m == expected[t, i] for t, i, m in crashed)


def _event(member: str, n: int, offset: int) -> Record:
    value = orjson.dumps({"event_id": f"{member}-{n}", "member_id": member, "type": "view",
                          "item_id": f"item-{n}", "ts": 1_291_191_960_000 + n * 60_000})
    return Record(0, offset, member.encode(), value)


def test_a_fallback_update_and_the_models_for_the_same_event_have_two_ids():
    """Triton down: a's update is the fallback, and the worker dies before that is flushed.
    Its replacement scores a's stored pending state with the model: a second update for the
    same event, with an id of its own; a second crash sends that one again, same id."""
    async def restart(store, scorer):
        proc = MemberProcessor(SETTINGS, store, scorer)
        await proc.process([_event("b", 1, 1)])  # the partition's next record: recovery
        updates = (await proc.score_pending(SETTINGS.triton_max_rows)).outputs
        return {u["member_id"]: u for u in map(orjson.loads, (o.value for o in updates))}

    async def go():
        store: dict = {}
        first = MemberProcessor(SETTINGS, store, UnavailableScorer())
        result = await first.process([_event("a", 0, 0)])
        store.update({m.encode(): s.to_bytes() for m, s in result.changed.items()})  # a: pending
        [fallback] = map(orjson.loads, (o.value for o in (await first.score_pending(1024)).outputs))
        return fallback, await restart(dict(store), ConstantScorer()), await restart(dict(store), ConstantScorer())

    fallback, model, model_again = asyncio.run(go())
    assert (fallback["based_on"], fallback["fallback"]) == ("a-0", True)
    assert (model["a"]["based_on"], model["a"]["fallback"]) == ("a-0", False)
    assert model["a"]["update_id"] != fallback["update_id"]
    assert model_again["a"] == model["a"] and model_again["b"]["update_id"] == model["b"]["update_id"]
