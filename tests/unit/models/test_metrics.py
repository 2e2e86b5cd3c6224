"""Metric functions and BG/NBD against hand-computed values."""
import math

import numpy as np
import pytest

from models.evaluation.baselines import CoOccurrence, Popularity, SessionKNN, Successor
from models.evaluation.bgnbd import BGNBD, hyp2f1
from models.metrics import (auc, brier, churn_metrics, f1_at, next_item_metrics, pr_auc,
                            rank_of, set_metrics)


def test_next_item_metrics_by_hand():
    # ranks 1 and 3 hit, 0 (absent) and 25 (beyond k) miss
    m = next_item_metrics([1, 3, 0, 25], k=20)
    assert m["points"] == 4
    assert m["hr@20"] == 0.5
    assert m["mrr@20"] == pytest.approx((1 + 1 / 3) / 4)
    assert m["ndcg@20"] == pytest.approx((1 + 1 / math.log2(4)) / 4)


def test_rank_of_is_one_based_and_zero_when_absent():
    assert rank_of("b", ["a", "b", "c"]) == 2
    assert rank_of("z", ["a", "b"]) == 0


def test_set_metrics_by_hand():
    hit, ndcg = set_metrics(["a", "b", "c"], {"b", "x"}, k=3)
    assert hit == 1.0
    assert ndcg == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert set_metrics(["a"], {"x"}, k=3) == (0.0, 0.0)


def test_auc_pr_auc_brier_f1_by_hand():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.1])
    assert auc(y, s) == 0.75  # 3 of 4 positive/negative pairs in order
    assert pr_auc(y, s) == pytest.approx((1 + 2 / 3) / 2)
    assert brier(np.array([1, 0]), np.array([0.8, 0.4])) == pytest.approx(0.1)
    assert f1_at(np.array([1, 1, 0, 0]), np.array([0.7, 0.5, 0.65, 0.1]), 0.6) == 0.5
    assert auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert pr_auc(np.array([1, 0]), np.array([0.5, 0.5])) == 0.5  # a tie enters as one step


def test_scores_that_are_not_probabilities_get_no_brier_or_f1():
    m = churn_metrics(np.array([1, 0]), np.array([30.0, 2.0]), probabilities=False, threshold=0.6)
    assert m["auc"] == 1.0 and math.isnan(m["brier"]) and math.isnan(m["f1"])


def test_baselines_rank_by_hand():
    sessions = [["a", "b", "c"], ["a", "b"], ["a", "c"], ["d", "a"]]
    assert Popularity(sessions).recommend(["x"], 2) == ["a", "b"]  # a 4, b 2, c 2 -> b by id
    succ = Successor(sessions)
    assert succ.recommend(["a"], 3) == ["b", "c", "a"]  # b twice, c once, then the most popular
    co = CoOccurrence(sessions)
    # around "c": b at distance 1 (1.0), a at distance 2 (0.5) and 1 (1.0)
    assert co.recommend(["c"], 2) == ["a", "b"]
    knn = SessionKNN(sessions)
    # the session ["a","c"] is the most similar to ["c"]; "c" itself scores too
    assert knn.recommend(["c"], 1) == ["a"]


def test_hyp2f1_matches_closed_form():
    z = np.array([0.1, 0.5, 0.9])
    assert np.allclose(hyp2f1(1.0, 1.0, 2.0, z), -np.log1p(-z) / z, rtol=1e-10)


def test_bgnbd_recovers_the_parameters_of_simulated_customers():
    rng = np.random.default_rng(3)
    r, alpha, a, b = 0.5, 4.0, 0.8, 2.5
    n, T = 6000, 39.0
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        lam, p = rng.gamma(r, 1 / alpha), rng.beta(a, b)
        t = 0.0
        while True:  # after each purchase the customer may drop out
            t += rng.exponential(1 / lam)
            if t > T:
                break
            x[i] += 1
            t_x[i] = t
            if rng.random() < p:
                break
    fit = BGNBD.fit(x, t_x, np.full(n, T))
    assert fit.r == pytest.approx(r, rel=0.2)
    assert fit.alpha == pytest.approx(alpha, rel=0.3)
    assert fit.a == pytest.approx(a, rel=0.3)
    assert fit.b == pytest.approx(b, rel=0.4)
    # Never bought again: alive by construction; no time, no purchase.
    assert fit.p_alive([0], [0.0], [T])[0] == 1.0
    assert fit.p_no_purchase([3], [10.0], [T], 0.0)[0] == pytest.approx(1.0)
    assert fit.expected_purchases([3], [10.0], [T], 1e-9)[0] == pytest.approx(0.0, abs=1e-6)
