"""A small CRM-side consumer of memberstream's output topics (docs/compose.md).

It reads `crm.*` in a consumer group, validates every message against the
published JSON Schemas (`schemas/<topic>.schema.json`), drops repeats by the
message's deterministic id (delivery is at-least-once) and prints one line per
new message. An invalid message is reported on stderr and counted; the exit
status is 1 if any was.

    python docs/examples/crm_consumer.py --bootstrap kafka:9092
    python docs/examples/crm_consumer.py --bootstrap 127.0.0.1:9092 --topic crm.churn-alerts \
        --from-beginning --count 100

Needs aiokafka and jsonschema only; it imports nothing of memberstream, as a
CRM's own service would not.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import OrderedDict
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from jsonschema import Draft202012Validator

TOPICS = ("crm.churn-alerts", "crm.recommendations", "crm.segments", "crm.anomalies")
ID_FIELD = {"crm.churn-alerts": "alert_id", "crm.recommendations": "update_id",
            "crm.segments": "change_id", "crm.anomalies": "anomaly_id"}
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


class Seen:
    """The newest `size` ids: repeats come from the producer's last uncommitted work."""

    def __init__(self, size: int = 100_000) -> None:
        self.ids: OrderedDict[str, None] = OrderedDict()
        self.size = size

    def add(self, key: str) -> bool:
        if key in self.ids:
            return False
        self.ids[key] = None
        if len(self.ids) > self.size:
            self.ids.popitem(last=False)
        return True


def summary(topic: str, m: dict) -> str:
    if topic == "crm.churn-alerts":
        return (f"ALERT {m['member_id']} p={m['churn_probability']:.2f} {m['risk_level']} "
                f"{','.join(r['code'] for r in m['reasons'])} -> {m['suggested_action']}")
    if topic == "crm.recommendations":
        return f"RECS  {m['member_id']} {' '.join(i['item_id'] for i in m['items'][:5])}"
    if topic == "crm.segments":
        return f"SEG   {m['member_id']} {m['lifecycle_stage']} {m['tier']}"
    return f"ANOM  {m['member_id']} {','.join(r['code'] for r in m['reasons'])} score {m['anomaly_score']:.2f}"


async def consume(args) -> int:
    validators = {t: Draft202012Validator(json.loads((SCHEMAS / f"{t}.schema.json").read_text()))
                  for t in args.topic}
    consumer = AIOKafkaConsumer(*args.topic, bootstrap_servers=args.bootstrap, group_id=args.group,
                                auto_offset_reset="earliest" if args.from_beginning else "latest",
                                enable_auto_commit=False)
    await consumer.start()
    seen, new, invalid = Seen(), 0, 0
    try:
        while args.count is None or new + invalid < args.count:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch and args.idle is not None:
                args.idle -= 1
                if args.idle < 0:
                    break
            for records in batch.values():
                for r in records:
                    try:
                        message = json.loads(r.value)
                        errors = sorted(validators[r.topic].iter_errors(message), key=str)
                    except ValueError as exc:
                        message, errors = None, [exc]
                    if errors:
                        invalid += 1
                        print(f"INVALID {r.topic} {r.partition}:{r.offset}: {errors[0]}", file=sys.stderr)
                    elif seen.add(f"{r.topic}/{message[ID_FIELD[r.topic]]}"):
                        new += 1
                        print(summary(r.topic, message), flush=True)
            await consumer.commit()  # after the messages were handled: at-least-once here too
    finally:
        await consumer.stop()
    print(f"{new} messages, {invalid} invalid", file=sys.stderr)
    return 1 if invalid else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--topic", action="append", choices=TOPICS, help="repeatable; default: all four")
    p.add_argument("--group", default="crm-example")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--count", type=int, help="stop after this many messages (new or invalid)")
    p.add_argument("--idle", type=int, help="stop after this many seconds without a message")
    args = p.parse_args()
    args.topic = tuple(args.topic or TOPICS)
    try:
        return asyncio.run(consume(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 (one readable line, no traceback)
        print(f"crm_consumer: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
