"""The demo's story (stream/tools/story.py): what a member bought next beside the
list they had, and the top alerts, from constructed outputs and log lines."""
import orjson
from rich.console import Console

from stream.tools import story

H = 3_600_000


def line(member, item, ts, kind="purchase"):
    return orjson.dumps({"event_id": f"{member}-{item}-{ts}", "member_id": member, "type": kind,
                         "item_id": item, "ts": ts})


def test_the_newest_list_before_a_later_purchase_beside_that_order():
    lines = [line("a", "x", 1 * H), line("a", "y", 10 * H), line("a", "z", 10 * H + 60_000),
             line("a", "late", 12 * H), line("a", "v", 9 * H, kind="view"), b"{broken",
             line("b", "q", 5 * H)]
    purchases = story.purchases_of(lines)
    assert purchases["a"] == [(H, "x"), (10 * H, "y"), (10 * H + 60_000, "z"), (12 * H, "late")]
    updates = {"a": [(2 * H, ["y", "k"]), (8 * H, ["k", "z", "m"]), (11 * H, ["late"])],
               "b": [(6 * H, ["q"])],          # nothing bought after its list
               "c": [(1 * H, ["w"])]}          # no purchases at all
    rows, hit, of = story.next_purchase_rows(updates, purchases)
    # a: the list of 11 h comes before the purchase of 12 h; it is the newest such list.
    assert rows == [("a", 11 * H, ["late"], ["late"], ["late"])] and (hit, of) == (1, 1)


def test_members_with_a_hit_come_first_and_the_order_is_an_hours_purchases():
    purchases = {"a": [(2 * H, "p"), (2 * H + 10, "r"), (4 * H, "s")], "b": [(2 * H, "n")]}
    rows, hit, of = story.next_purchase_rows({"a": [(H, ["r", "t"])], "b": [(H, ["t"])]}, purchases)
    assert [(r[0], r[3], r[4]) for r in rows] == [("a", ["p", "r"], ["r"]), ("b", ["n"], [])]
    assert (hit, of) == (1, 2)


def test_top_alerts_by_probability_with_reasons_and_value():
    alerts = [{"member_id": m, "churn_probability": p, "risk_level": "medium", "event_time": "2011-01-01T00:00:00Z",
               "reasons": [{"code": "INACTIVE_7D"}], "suggested_action": "email",
               "value": {"p_alive": 0.5, "expected_spend_90d": 12.0}} for m, p in (("a", 0.61), ("b", 0.9), ("c", 0.7))]
    console = Console(width=200, record=True)
    console.print(story.top_alerts(alerts, n=2))
    text = console.export_text()
    assert text.index("b ") < text.index("c ") and " a " not in text and "INACTIVE_7D" in text and "12.00" in text
