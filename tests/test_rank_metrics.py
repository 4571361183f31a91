"""Ranking metrics of the screening situation, on hand-computed cases."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from screening.rank_metrics import auc, first_of_system, hits_in_top, reliability, screening_metrics


def test_hits_in_top_counts_ties_at_their_expected_value():
    stable = np.array([1, 0, 1, 0, 0, 0], bool)
    score = np.array([5.0, 4.0, 3.0, 3.0, 3.0, 1.0])
    assert hits_in_top(stable, score, 1) == 1
    assert hits_in_top(stable, score, 2) == 1
    assert hits_in_top(stable, score, 3) == pytest.approx(1 + 1 / 3)  # one of three tied slots, one tied is stable
    assert hits_in_top(stable, score, 6) == 2 and hits_in_top(stable, score, 0) == 0
    constant = screening_metrics(stable, np.zeros(6), list("aabbcc"))
    assert constant["precision_top_n"] == pytest.approx(2 / 6) and constant["enrichment_top_n"] == pytest.approx(1.0)


def test_auc_agrees_with_sklearn_and_a_perfect_ranking_scores_one():
    rng = np.random.default_rng(0)
    stable = rng.random(500) < 0.05
    score = stable + rng.normal(0, 0.8, 500)
    assert auc(stable, score) == pytest.approx(roc_auc_score(stable, score))
    assert auc(stable, stable.astype(float)) == 1.0 and auc(stable, np.zeros(500)) == 0.5


def test_first_of_system_counts_only_systems_with_a_stable_candidate():
    stable = np.array([1, 0, 0, 1, 0, 0], bool)
    score = np.array([0.9, 0.1, 0.8, 0.2, 0.5, 0.5])
    system = np.array(["A", "A", "B", "B", "C", "C"])  # C holds no stable candidate: not counted
    assert first_of_system(stable, score, system) == 0.5
    m = screening_metrics(stable, score, system)
    assert m["systems"] == 3 and m["stable"] == 2 and m["precision_top_n"] == 0.5
    assert m["recall_top_5pct"] == 0.0  # round(0.3) = 0 candidates


def test_reliability_of_a_calibrated_and_of_an_overconfident_probability():
    rng = np.random.default_rng(1)
    p = rng.beta(0.5, 2.0, 200_000)
    stable = rng.random(p.size) < p
    calibrated = reliability(stable, p)
    assert (
        calibrated["ece"] < 0.005
        and abs(calibrated["at_least_half"]["predicted"] - calibrated["at_least_half"]["observed"]) < 0.1
    )
    over = reliability(stable, np.sqrt(p))
    assert over["ece"] > 0.05 and over["brier"] > calibrated["brier"]
    with pytest.raises(ValueError):
        reliability(stable, p + 1)
    with pytest.raises(ValueError, match="not finite"):
        screening_metrics(stable, np.full(p.size, np.nan), np.zeros(p.size))
