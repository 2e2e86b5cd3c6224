"""`memberstream demo`: the whole path on real parts, live, then the story.

Starts the embedded broker, Triton and a worker, prints the worker's
dashboard address, replays a recorded real log under a compact live view
(outputs per topic, the newest alerts), waits until the worker has taken
every event, and ends with the summary, the members by stage and tier, the
top alerts with reasons and value, and a few real members' recommendations
beside what they bought next in the log (stream/tools/story.py). Then it
stops every process it started, or, with `follow`, keeps them (and the
dashboard) running until Ctrl-C.
"""
from __future__ import annotations

import asyncio
import signal
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

import orjson
from rich.console import Console
from rich.live import Live

from stream.contract import metrics as names
from stream.contract import topics
from stream.contract.schemas import EVENT_TIMES
from stream.tools import story
from stream.kafka.admin import ensure_topics
from stream.tools.launcher import wait_until
from stream.tools.logs import read_log
from stream.tools.replay import replay
from stream.settings import STACK_ENV, Settings
from stream.tools.stack import running_stack, write_stack_env
from stream.tools.tail import messages

async def _watch(bootstrap: str, seen: "Seen", ready: asyncio.Event, stop: asyncio.Event) -> None:
    readies = [asyncio.Event() for _ in story.SHOWN_TOPICS]

    async def follow(topic: str, ev: asyncio.Event) -> None:
        async for msg in messages(bootstrap, topic, from_beginning=True, ready=ev):
            seen.counts[topic] += 1
            if topic == topics.CHURN_ALERTS:
                seen.alerts.append(orjson.loads(msg.value))
            elif topic == topics.RECOMMENDATIONS:
                r = orjson.loads(msg.value)
                seen.updates[r["member_id"]].append(
                    (EVENT_TIMES[r["event_time"]], [i["item_id"] for i in r["items"]]))
            if stop.is_set():
                return

    tasks = [asyncio.create_task(follow(t, e)) for t, e in zip(story.SHOWN_TOPICS, readies)]
    await asyncio.gather(*(e.wait() for e in readies))
    ready.set()
    await stop.wait()
    await asyncio.sleep(0)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Seen:
    """The outputs the demo read: counts per topic, every alert, every member's lists."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.alerts: list[dict] = []
        self.updates: dict[str, list] = defaultdict(list)


async def _run(settings: Settings, log: Path, stack, say, console: Console) -> tuple[dict, Seen, list[bytes]]:
    lines = read_log(log)
    bootstrap = stack.broker.bootstrap
    await ensure_topics(bootstrap, settings.partitions)
    seen = Seen()
    counts = seen.counts
    ready, stop = asyncio.Event(), asyncio.Event()
    watcher = asyncio.create_task(_watch(bootstrap, seen, ready, stop))
    await ready.wait()
    t0 = time.monotonic()
    say(f"replaying {len(lines)} events from {log} as fast as possible ...")
    worker = stack.workers[0]
    with Live(story.live_view(counts, seen.alerts, 0, 0.0), console=console, refresh_per_second=4) as live:
        async def showing(work, sent: int):
            """`work` awaited, the live view redrawn meanwhile."""
            task = asyncio.ensure_future(work)
            while not task.done():
                live.update(story.live_view(counts, seen.alerts, sent, time.monotonic() - t0))
                await asyncio.sleep(0.25)
            return await task

        sent = await showing(replay(log, bootstrap, settings.partitions, lines=lines), 0)
        await showing(asyncio.to_thread(wait_until, lambda: worker.settled(sent.sent), 600,
                                        "worker to take every event", worker.process, 0.25), sent.sent)
        m = worker.metrics()
        expected = {topics.CHURN_ALERTS: m[names.ALERTS],
                    topics.RECOMMENDATIONS: m[names.RECOMMENDATION_UPDATES],
                    topics.DEAD_LETTER: m[names.DEAD_LETTERED],
                    topics.SEGMENTS: m[names.SEGMENT_CHANGES],
                    topics.ANOMALIES: m[names.ANOMALIES]}
        await asyncio.to_thread(wait_until, lambda: all(counts[t] >= n for t, n in expected.items()),
                                60, "outputs to arrive")
        elapsed = time.monotonic() - t0
        live.update(story.live_view(counts, seen.alerts, sent.sent, elapsed))
    stop.set()
    await watcher
    return {"events in": sent.sent, "valid events": int(m[names.EVENTS]),
            "dead-lettered": int(m[names.DEAD_LETTERED]),
            "duplicates dropped": int(m[names.DUPLICATES]),
            "churn alerts": counts[topics.CHURN_ALERTS],
            "recommendation updates": counts[topics.RECOMMENDATIONS],
            "segment changes": counts[topics.SEGMENTS], "anomalies": counts[topics.ANOMALIES],
            "triton requests": int(m[names.TRITON_REQUESTS]),
            "elapsed s": round(elapsed, 1), "events/s": round(sent.sent / elapsed)}, seen, lines


def run_demo(settings: Settings, log: Path, say: Callable[[str], None] = print, follow: bool = False) -> dict:
    work_dir = settings.state_dir / "demo"
    console = Console()
    try:
        with running_stack(settings, work_dir, say=say) as stack:
            write_stack_env(stack, settings)
            worker = stack.workers[0]
            say(f"dashboard {worker.web_url}/dashboard  (open it in a browser; it stays up until the end)")
            summary, seen, lines = asyncio.run(_run(settings, log, stack, say, console))
            say("")
            say("summary")
            for k, v in summary.items():
                say(f"  {k:<24} {v}")
            _story(console, worker, seen, lines, settings)
            if follow:
                say(f"following: the stack and {worker.web_url}/dashboard keep running; Ctrl-C stops all")
                _until_interrupted()
    finally:
        STACK_ENV.unlink(missing_ok=True)
    say("all processes stopped")
    return summary


def _story(console: Console, worker, seen: Seen, lines: list[bytes], settings: Settings) -> None:
    token = settings.api_token
    request = urllib.request.Request(f"{worker.web_url}/dashboard/data", headers={} if token is None else {
        "Authorization": f"Bearer {token.get_secret_value()}"})
    with urllib.request.urlopen(request, timeout=10) as r:
        population = orjson.loads(r.read())["population"]
    console.print(story.population_tables(population))
    console.print(story.top_alerts(seen.alerts))
    purchases = story.purchases_of(lines, settings.pseudonymizer())  # named as the outputs name them
    console.print(story.next_purchase_table(*story.next_purchase_rows(seen.updates, purchases)))


def _until_interrupted() -> None:
    """Until Ctrl-C or SIGTERM; either way the stack is then stopped by its context. (Set
    here: a shell that starts the demo in the background leaves SIGINT ignored.)"""
    def stop(signum, frame):
        raise KeyboardInterrupt
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
