"""The top factors behind a churn score (stream/scoring/explain.py), on constructed
histories whose answer is known: scorers whose churn depends on one thing only.
The processor's use of them, with the shipped model and with a failing scorer, is
in tests/unit/processing/test_processor.py."""
import math

import pytest

from stream.contract.schemas import EVENT_TYPES
from stream.scoring import explain
from stream.scoring.scores import Row

CODE = {t: i + 1 for i, t in enumerate(EVENT_TYPES)}
DAY = 86400.0
L = 8


def row(events, silence_days):
    """(item, type, gap in days) oldest first, left-padded to L."""
    pad = L - len(events)
    return Row([b""] * pad + [i.encode() for i, _, _ in events], [0] * pad + [CODE[t] for _, t, _ in events],
               [0.0] * pad + [g * DAY for _, _, g in events], silence_days * DAY)


REGULAR = [("a", "purchase", 0), ("b", "view", 7), ("c", "purchase", 7), ("d", "view", 7), ("e", "purchase", 7)]


def explained(churn_of, r):
    variants = explain.occlusions(r)
    return explain.factors(churn_of(r), variants, [churn_of(v.row) for v in variants])


def test_a_score_driven_by_the_silence_alone_names_the_silence_and_nothing_else():
    def churn_of(r):
        return 1 - math.exp(-r.silence_s / (30 * DAY))
    [factor] = explained(churn_of, row(REGULAR, 40))
    assert factor.code == "MODEL_SILENCE" and "40 days of silence" in factor.text
    assert factor.contribution == pytest.approx(churn_of(row(REGULAR, 40)), abs=1e-4)
    # Occluding an event moves the silence too (as if it had not happened): without the
    # newest event the silence is 47 days, a higher score, so no factor of its own.
    assert [v.code for v in explain.occlusions(row(REGULAR, 40))].count("MODEL_RECENT_EVENT") == 5


def test_a_score_driven_by_one_item_names_that_event():
    events = REGULAR[:2] + [("returned-in-anger", "remove_from_cart", 1)] + REGULAR[2:]

    def churn_of(r):
        return 0.85 if b"returned-in-anger" in r.items else 0.2
    [factor] = explained(churn_of, row(events, 10))
    assert factor.code == "MODEL_RECENT_EVENT" and factor.contribution == pytest.approx(0.65)
    assert "remove-from-cart of item returned-in-anger" in factor.text
    assert "31 days before the checkpoint" in factor.text  # 10 of silence, then 3 gaps of 7
    # Beyond the RECENT_EVENTS newest, events are not occluded one by one.
    old = [("returned-in-anger", "view", 0)] + [(f"x{i}", "view", 1) for i in range(explain.RECENT_EVENTS)]
    assert explained(churn_of, row(old, 10)) == []


def test_factors_that_lower_the_score_are_left_out_and_the_largest_come_first():
    def churn_of(r):
        n = L - r.items.count(b"")
        purchases = r.types.count(CODE["purchase"])
        carts = r.types.count(CODE["add_to_cart"])
        return min(1.0, 0.3 + 0.15 * carts - 0.05 * purchases + 0.001 * n)
    events = [("a", "purchase", 0), ("b", "add_to_cart", 3), ("c", "add_to_cart", 3), ("d", "view", 3)]
    factors = explained(churn_of, row(events, 5))
    assert factors[0].code == "MODEL_CART" and factors[0].contribution == pytest.approx(0.30)
    assert "2 cart add" in factors[0].text
    assert "MODEL_PURCHASES" not in {f.code for f in factors}  # purchases lower churn here
    assert [f.contribution for f in factors] == sorted((f.contribution for f in factors), reverse=True)
    assert len(factors) <= explain.TOP_FACTORS and all(f.contribution >= explain.MIN_CONTRIBUTION for f in factors)


def test_an_irregular_pace_is_a_factor_when_the_score_depends_on_it():
    def churn_of(r):
        gaps = [g for i, g in zip(r.items, r.gaps) if i][1:]
        return min(1.0, 0.2 + 0.5 * (max(gaps) - min(gaps)) / (60 * DAY))
    events = [("a", "view", 0), ("b", "view", 1), ("c", "view", 40), ("d", "view", 1)]
    [factor] = explained(churn_of, row(events, 1))
    assert factor.code == "MODEL_PACE" and factor.contribution == pytest.approx(0.5 * 39 / 60, abs=1e-6)
    # A steady pace offers no such variant.
    steady = [("a", "view", 0), ("b", "view", 7), ("c", "view", 7), ("d", "view", 7)]
    assert "MODEL_PACE" not in {v.code for v in explain.occlusions(row(steady, 1))}


def test_occluding_an_event_keeps_the_timeline():
    r = row(REGULAR, 4)
    without_c = explain._without(r, L - 3)
    assert len(without_c.items) == L and b"c" not in without_c.items
    assert without_c.gaps[-2] == 14 * DAY and sum(without_c.gaps) + without_c.silence_s == sum(r.gaps) + r.silence_s
    newest = explain._without(r, L - 1)
    assert newest.silence_s == 11 * DAY and newest.items[-1] == b"d"
    # A member with one event: nothing to take away but the silence.
    assert [v.code for v in explain.occlusions(row(REGULAR[:1], 3))] == ["MODEL_SILENCE"]
