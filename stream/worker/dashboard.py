"""The worker's live dashboard: what the page at `/dashboard` polls.

The page and its script ship in the package (stream/worker/dashboard_assets/:
no CDN, no build step) and poll `/dashboard/data` once a second. Everything
here is this worker's own view: the outputs it published, its members'
stages, tiers and churn probabilities (of those it holds decoded: touched
since its partitions were assigned, up to `member_cache_max`). A member searched by id is read
from `/members/{id}`, which Faust routes to the worker that owns them.

`Feed` keeps, in memory and bounded, what the worker published: the newest
churn alerts and anomalies, and the newest recommendation update of the
members it saw most recently (their items' reasons, which the member state
does not keep). It starts empty after a restart.
"""
from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from importlib import resources
from typing import Callable, Iterable, Optional

import orjson

from stream.contract import topics

ASSETS = "dashboard_assets"
CONTENT_TYPES = {".html": "text/html", ".js": "application/javascript", ".css": "text/css"}
CHURN_BINS = 10


def asset(name: str) -> tuple[str, str]:
    """(text, content type) of a shipped asset; KeyError for any other name."""
    suffix = name[name.rfind("."):] if "." in name else ""
    if suffix not in CONTENT_TYPES or "/" in name or name.startswith("."):
        raise KeyError(name)
    path = resources.files("stream.worker").joinpath(ASSETS, name)
    if not path.is_file():
        raise KeyError(name)
    return path.read_text(encoding="utf-8"), CONTENT_TYPES[suffix]


class Feed:
    def __init__(self, alerts: int = 50, anomalies: int = 20, members: int = 10_000) -> None:
        self.alerts: deque = deque(maxlen=alerts)
        self.anomalies: deque = deque(maxlen=anomalies)
        self.recommendations: OrderedDict[str, dict] = OrderedDict()
        self.members = members
        self.outputs = 0  # output messages published, every topic

    def published(self, outputs: Iterable) -> None:
        for o in outputs:
            self.outputs += 1
            if o.topic == topics.CHURN_ALERTS:
                self.alerts.appendleft(orjson.loads(o.value))
            elif o.topic == topics.ANOMALIES:
                self.anomalies.appendleft(orjson.loads(o.value))
            elif o.topic == topics.RECOMMENDATIONS:
                update = orjson.loads(o.value)
                member = update["member_id"]
                self.recommendations[member] = update
                self.recommendations.move_to_end(member)
                while len(self.recommendations) > self.members:
                    self.recommendations.popitem(last=False)

    def reasons(self, member_id: str) -> dict[str, Optional[str]]:
        """item id -> reason, from the member's newest recommendation update seen here."""
        update = self.recommendations.get(member_id)
        return {} if update is None else {i["item_id"]: i.get("reason") for i in update["items"]}


def population(states: Iterable) -> dict:
    """Members per stage and tier, and the churn probability's histogram (10 bins;
    members not scored yet counted apart)."""
    stages, tiers = Counter(), Counter()
    bins = [0] * CHURN_BINS
    unscored = 0
    for s in states:
        stages[s.stage] += 1
        tiers[s.tier or "none"] += 1
        p = s.churn_probability
        if p is None:
            unscored += 1
        else:
            bins[min(CHURN_BINS - 1, max(0, int(p * CHURN_BINS)))] += 1
    return {"stages": dict(sorted(stages.items())), "tiers": dict(sorted(tiers.items())),
            "churn_histogram": bins, "unscored": unscored}


class Snapshot:
    """`population` of the worker's members, recomputed at most every `every_s` (a poll
    of every open page would otherwise walk every state each second)."""

    def __init__(self, states: Callable[[], Iterable], every_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.states, self.every_s, self.clock = states, every_s, clock
        self._at, self._value = None, None

    def get(self) -> dict:
        now = self.clock()
        if self._at is None or now - self._at >= self.every_s:
            self._at, self._value = now, population(self.states())
        return self._value
