"""Read a topic and hand each message on as one JSON object."""
from __future__ import annotations

import asyncio
import base64
import time
from typing import AsyncIterator, Optional

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.kafka.admin import started
from stream.kafka.security import PLAINTEXT, KafkaSecurity


def as_json(msg, envelope: bool) -> dict:
    """The message's JSON value; with `envelope` (or a value that is not JSON)
    wrapped with topic, partition, offset, key and headers."""
    value = None
    if msg.value is not None:
        try:
            value = orjson.loads(msg.value)
        except orjson.JSONDecodeError:
            envelope = True
            try:
                value = msg.value.decode("utf-8")
            except UnicodeDecodeError:
                value = {"base64": base64.b64encode(msg.value).decode()}
    if not envelope and isinstance(value, dict):
        return value
    return {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
            "key": msg.key.decode("utf-8", "replace") if msg.key is not None else None,
            "headers": {k: v.decode("utf-8", "replace") for k, v in (msg.headers or ())},
            "value": value}


async def messages(bootstrap: str, topic: str, from_beginning: bool = False,
                   count: Optional[int] = None, idle_s: Optional[float] = None,
                   ready: Optional[asyncio.Event] = None, security: KafkaSecurity = PLAINTEXT) -> AsyncIterator:
    """Messages of all partitions of `topic`, until `count` or `idle_s` without one."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=50, request_timeout_ms=10000, **security.aiokafka())
    await started(consumer, bootstrap)
    try:
        parts = None
        for _ in range(100):
            parts = consumer.partitions_for_topic(topic)
            if parts:
                break
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        if not parts:
            raise LookupError(f"topic {topic} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
            for tp in tps:
                await consumer.position(tp)
        if ready is not None:
            ready.set()
        seen, last = 0, time.monotonic()
        while count is None or seen < count:
            batch = await consumer.getmany(timeout_ms=100, max_records=500)
            if not batch:
                if idle_s is not None and time.monotonic() - last >= idle_s:
                    return
                continue
            last = time.monotonic()
            for tp_msgs in batch.values():
                for msg in tp_msgs:
                    yield msg
                    seen += 1
                    if count is not None and seen >= count:
                        return
    finally:
        await consumer.stop()


def pretty(msg) -> str:
    """One readable line: where the message sits, then what it says (by topic); a
    value that is not a contract message is shown as its JSON."""
    where = f"{msg.topic}[{msg.partition}]@{msg.offset}"
    value = as_json(msg, False)
    try:
        return f"{where}  {_summary(msg, value)}"
    except (KeyError, TypeError, AttributeError):
        return f"{where}  {orjson.dumps(value).decode()}"


def _summary(msg, m: dict) -> str:
    topic = msg.topic
    if topic == "crm.churn-alerts":
        v = m.get("value") or {}
        return (f"ALERT {m['event_time'][:16]}  member {m['member_id']}  p={m['churn_probability']:.2f} "
                f"{m['risk_level']}  {','.join(r['code'] for r in m['reasons'])}  "
                f"P(alive) {number(v.get('p_alive'))} spend90 {number(v.get('expected_spend_90d'))}  -> {m['suggested_action']}")
    if topic == "crm.recommendations":
        items = " ".join(f"{i['item_id']}" for i in m["items"][:5])
        return f"RECS  {m['event_time'][:16]}  member {m['member_id']}  {items}{' (fallback)' if m['fallback'] else ''}"
    if topic == "crm.segments":
        return (f"SEG   {m['event_time'][:16]}  member {m['member_id']}  {m['previous_lifecycle_stage']} -> "
                f"{m['lifecycle_stage']}, tier {m['previous_tier']} -> {m['tier']}")
    if topic == "crm.anomalies":
        return (f"ANOM  {m['event_time'][:16]}  member {m['member_id']}  score {m['anomaly_score']:.2f}  "
                f"{','.join(r['code'] for r in m['reasons'])}")
    if topic == "shop.events.dlq":
        headers = {k: v.decode("utf-8", "replace") for k, v in (msg.headers or ())}
        return f"DEAD  {headers.get('error', '?')}: {headers.get('error_detail', '')[:120]}"
    if topic == "shop.events":
        return f"EVENT {m['ts']}  member {m['member_id']}  {m['type']} {m['item_id']}"
    return orjson.dumps(m).decode()


def number(x) -> str:
    """A figure of a message, two decimals; n/a when the message has none."""
    return "n/a" if x is None else f"{x:.2f}"
