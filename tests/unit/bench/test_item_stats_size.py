"""bench/item_stats_size.py counts what one worker's item statistics hold."""
import orjson

from bench.item_stats_size import item_stats_size
from stream.settings import Settings

T = 1_300_000_000_000


def _line(n, member, kind, item, ts=T):
    return orjson.dumps({"event_id": f"e{n}", "member_id": member, "type": kind, "item_id": item, "ts": ts})


def test_items_counted_paired_and_their_neighbours():
    lines = [_line(0, "m1", "purchase", "A"), _line(1, "m1", "purchase", "B"), _line(2, "m1", "purchase", "C"),
             _line(3, "m2", "view", "D"),  # counted, paired with nothing
             _line(4, "m3", "remove_from_cart", "E"),  # weight 0: neither
             b"not json"]
    small = item_stats_size(lines, Settings())
    assert (small["events"], small["items_counted"], small["items_paired"], small["neighbours"]) == (5, 4, 3, 6)
    more = item_stats_size(lines + [_line(5 + n, "m4", "purchase", f"X{n}") for n in range(40)], Settings())
    assert more["items_paired"] == 3 + 40 and more["neighbours"] == 6 + 2 * sum(min(n, 10) for n in range(40))
    assert more["bytes"] > small["bytes"] > 0


def test_under_a_bound_the_least_popular_go_and_the_evictions_are_counted():
    lines = [_line(n, "m1", "purchase", f"X{n}") for n in range(40)]
    r = item_stats_size(lines, Settings(item_stats_max_items=8), trace=False)
    # 8 + 2 = 10 items allowed: back to 8 at the 11th, 14th, ... 38th item counted (an
    # evicted item is not paired again, so only the counted ones bring the next eviction).
    assert (r["evictions"], r["items_counted"], r["max_items"], r["bytes"]) == (10, 10, 8, 0)
    assert r["items_paired"] <= 10 and r["count_s"] >= r["event_s_max"] >= r["eviction_s_max"] > 0


def test_copies_count_the_log_again_under_new_member_and_item_ids():
    lines = [_line(0, "m1", "purchase", "A"), _line(1, "m1", "purchase", "B"), _line(2, "m2", "view", "C")]
    one = item_stats_size(lines, Settings(), trace=False)
    three = item_stats_size(lines, Settings(), trace=False, copies=3)
    assert (one["events"], one["items_counted"], one["items_paired"], one["neighbours"]) == (3, 3, 2, 2)
    # Each copy pairs its own A~c with its own B~c only: three times the items and neighbours.
    assert (three["events"], three["items_counted"], three["items_paired"], three["neighbours"]) == (9, 9, 6, 6)
