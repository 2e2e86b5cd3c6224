"""`memberstream demo`: the whole path on real parts, live, then a summary.

Starts the embedded broker, Triton and a worker, replays a recorded real
log, prints churn alerts and recommendation updates as they arrive, waits
until the worker has taken every event, prints a summary and stops every
process it started.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import orjson

from stream.contract import metrics as names
from stream.contract import topics
from stream.kafka.admin import ensure_topics
from stream.tools.launcher import wait_until
from stream.tools.logs import read_log
from stream.tools.replay import replay
from stream.settings import STACK_ENV, Settings
from stream.tools.stack import running_stack, write_stack_env
from stream.tools.tail import messages

REC_LINES_PER_S = 5  # recommendation updates are many: show a few per second


def _alert_line(a: dict) -> str:
    codes = ",".join(r["code"] for r in a["reasons"])
    return (f"ALERT  {a['event_time'][:10]}  member {a['member_id']:<8} p={a['churn_probability']:.2f} "
            f"{a['risk_level']:<8} {codes:<36} -> {a['suggested_action']}")


def _rec_line(r: dict) -> str:
    items = " ".join(i["item_id"] for i in r["items"][:5])
    tag = " (fallback)" if r["fallback"] else ""
    return f"RECS   {r['event_time'][:10]}  member {r['member_id']:<8} top-5 {items}{tag}"


async def _watch(bootstrap: str, counts: Counter, say: Callable[[str], None], ready: asyncio.Event,
                 stop: asyncio.Event) -> None:
    shown_at, hidden = 0.0, 0
    readies = [asyncio.Event() for _ in topics.OUTPUTS + (topics.DEAD_LETTER,)]

    async def follow(topic: str, ev: asyncio.Event) -> None:
        nonlocal shown_at, hidden
        async for msg in messages(bootstrap, topic, from_beginning=True, ready=ev):
            counts[topic] += 1
            if topic == topics.CHURN_ALERTS:
                say(_alert_line(orjson.loads(msg.value)))
            elif topic == topics.RECOMMENDATIONS:
                now = time.monotonic()
                if now - shown_at >= 1 / REC_LINES_PER_S:
                    shown_at = now
                    more = f"   (+{hidden} more updates)" if hidden else ""
                    say(_rec_line(orjson.loads(msg.value)) + more)
                    hidden = 0
                else:
                    hidden += 1
            if stop.is_set():
                return

    tasks = [asyncio.create_task(follow(t, e)) for t, e in zip(topics.OUTPUTS + (topics.DEAD_LETTER,), readies)]
    await asyncio.gather(*(e.wait() for e in readies))
    ready.set()
    await stop.wait()
    await asyncio.sleep(0)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _run(settings: Settings, log: Path, stack, say) -> dict:
    lines = read_log(log)
    bootstrap = stack.broker.bootstrap
    await ensure_topics(bootstrap, settings.partitions)
    counts: Counter = Counter()
    ready, stop = asyncio.Event(), asyncio.Event()
    watcher = asyncio.create_task(_watch(bootstrap, counts, say, ready, stop))
    await ready.wait()
    t0 = time.monotonic()
    say(f"replaying {len(lines)} events from {log} as fast as possible ...")
    sent = await replay(log, bootstrap, settings.partitions, lines=lines)
    worker = stack.workers[0]
    await asyncio.to_thread(wait_until, lambda: worker.settled(sent.sent), 600,
                            "worker to take every event", worker.process, 0.25)
    m = worker.metrics()
    expected = {topics.CHURN_ALERTS: m[names.ALERTS],
                topics.RECOMMENDATIONS: m[names.RECOMMENDATION_UPDATES],
                topics.DEAD_LETTER: m[names.DEAD_LETTERED],
                topics.SEGMENTS: m[names.SEGMENT_CHANGES],
                topics.ANOMALIES: m[names.ANOMALIES]}
    await asyncio.to_thread(wait_until, lambda: all(counts[t] >= n for t, n in expected.items()),
                            60, "outputs to arrive")
    elapsed = time.monotonic() - t0
    stop.set()
    await watcher
    return {"events in": sent.sent, "valid events": int(m[names.EVENTS]),
            "dead-lettered": int(m[names.DEAD_LETTERED]),
            "duplicates dropped": int(m[names.DUPLICATES]),
            "churn alerts": counts[topics.CHURN_ALERTS],
            "recommendation updates": counts[topics.RECOMMENDATIONS],
            "segment changes": counts[topics.SEGMENTS], "anomalies": counts[topics.ANOMALIES],
            "triton requests": int(m[names.TRITON_REQUESTS]),
            "elapsed s": round(elapsed, 1), "events/s": round(sent.sent / elapsed)}


def run_demo(settings: Settings, log: Path, say: Callable[[str], None] = print) -> dict:
    work_dir = settings.state_dir / "demo"
    try:
        with running_stack(settings, work_dir, say=say) as stack:
            write_stack_env(stack, settings)
            summary = asyncio.run(_run(settings, log, stack, say))
    finally:
        STACK_ENV.unlink(missing_ok=True)
    say("")
    say("summary")
    for k, v in summary.items():
        say(f"  {k:<24} {v}")
    say("all processes stopped")
    return summary
