"""What the demo shows besides the counts: a compact live view while the log is
replayed, and at the end the members by stage and tier, the top alerts with
their reasons and value, and, for a few real members, the recommendations they
had beside what they actually bought next in the log.

Pure functions over what the demo collected (its outputs, the log's lines and
the worker's /dashboard/data), rendered with rich.
"""
from __future__ import annotations

from collections import defaultdict

import orjson
from rich.table import Table

from stream.contract import topics
from stream.contract.schemas import EVENT_TIMES
from stream.domain.event_time import rfc3339
from stream.tools.tail import number

SHOWN_TOPICS = (topics.CHURN_ALERTS, topics.RECOMMENDATIONS, topics.SEGMENTS, topics.ANOMALIES,
                topics.DEAD_LETTER)


def live_view(counts: dict, alerts: list[dict], sent: int, elapsed_s: float) -> Table:
    """Outputs so far per topic and the newest alerts: redrawn in place, not a wall of lines."""
    table = Table(title=f"replay: {sent} events sent, {elapsed_s:.1f} s", show_header=True, expand=False)
    table.add_column("topic")
    table.add_column("messages", justify="right")
    for topic in SHOWN_TOPICS:
        table.add_row(topic, str(counts.get(topic, 0)))
    for a in alerts[-3:]:
        table.add_row(f"[bold]alert[/] {a['member_id']}", f"p={a['churn_probability']:.2f} {a['risk_level']}")
    return table


def population_tables(population: dict) -> Table:
    table = Table(title="members by stage and tier (the worker's table at the end)")
    table.add_column("stage")
    table.add_column("members", justify="right")
    table.add_column("tier")
    table.add_column("members", justify="right")
    stages, tiers = list(population["stages"].items()), list(population["tiers"].items())
    for i in range(max(len(stages), len(tiers))):
        s = stages[i] if i < len(stages) else ("", "")
        t = tiers[i] if i < len(tiers) else ("", "")
        table.add_row(s[0], str(s[1]), t[0], str(t[1]))
    return table


def top_alerts(alerts: list[dict], n: int = 5) -> Table:
    """The `n` alerts with the highest churn probability (ties: the later first)."""
    table = Table(title=f"top {n} churn alerts of {len(alerts)}")
    for column in ("member", "p", "risk", "reasons", "P(alive)", "spend 90 d", "action"):
        table.add_column(column, justify="right" if column in ("p", "P(alive)", "spend 90 d") else "left")
    for a in sorted(alerts, key=lambda a: (a["churn_probability"], a["event_time"]), reverse=True)[:n]:
        v = a.get("value") or {}
        table.add_row(a["member_id"], f"{a['churn_probability']:.2f}", a["risk_level"],
                      ", ".join(r["code"] for r in a["reasons"]), number(v.get("p_alive")),
                      number(v.get("expected_spend_90d")), a["suggested_action"])
    return table


def purchases_of(lines: list[bytes], pseudonym=None) -> dict[str, list[tuple[int, str]]]:
    """member -> [(time ms, item)] of the log's valid-looking purchases, in time order;
    `pseudonym`: the worker's, to name members as its outputs do."""
    name = pseudonym or (lambda m: m)
    out = defaultdict(list)
    for line in lines:
        try:
            e = orjson.loads(line)
            if e.get("type") == "purchase" and isinstance(e.get("member_id"), str):
                ts = e["ts"] if isinstance(e["ts"], int) else EVENT_TIMES[e["ts"]]
                out[name(e["member_id"])].append((ts, str(e["item_id"])))
        except Exception:  # noqa: BLE001 (a line the worker dead-letters: not a purchase here)
            continue
    return {m: sorted(p) for m, p in out.items()}


def next_purchase_rows(updates: dict[str, list[tuple[int, list[str]]]],
                       purchases: dict[str, list[tuple[int, str]]], members: int = 5, k: int = 10):
    """For up to `members` members, the newest recommendation list they had before a
    later purchase, beside the items of their next order (purchases within an hour
    of its first line). Members with a hit come first; rows: (member, list time ms,
    list, items bought next, hits). Also how many of all members with such a list
    had a hit: (rows, members with a hit, members)."""
    rows = []
    for member, lists in updates.items():
        bought = purchases.get(member, [])
        for at, items in sorted(lists, reverse=True):
            later = [(t, i) for t, i in bought if t > at]
            if later and items:
                first = later[0][0]
                order = list(dict.fromkeys(i for t, i in later if t - first <= 3_600_000))
                hits = [i for i in items[:k] if i in order]
                rows.append((member, at, items[:k], order, hits))
                break
    rows.sort(key=lambda r: (-len(r[4]), r[0]))
    return rows[:members], sum(bool(r[4]) for r in rows), len(rows)


def next_purchase_table(rows, hit: int, of: int) -> Table:
    share = f"{hit} of {of} members ({hit / of:.0%})" if of else "no member"
    table = Table(title=f"recommendations beside what the member bought next in the log: a top-10 hit "
                        f"for {share}; members with a hit shown first")
    for column in ("member", "list as of", "recommended (top 10; * = bought next)", "bought next"):
        table.add_column(column)
    for member, at, items, order, hits in rows:
        shown = " ".join(f"[bold green]{i}*[/]" if i in hits else i for i in items)
        bought = " ".join(order[:10]) + (f" (+{len(order) - 10})" if len(order) > 10 else "")
        table.add_row(member, rfc3339(at)[:16], shown, bought)
    return table
