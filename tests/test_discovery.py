import numpy as np
import pytest

from screening.discovery import classification_metrics, reliability, top_k_recall


def test_classification_metrics():
    true = [-0.1, -0.05, 0.2, 0.3, -0.2, 0.1]  # stable: 0, 1, 4
    pred = [-0.2, 0.05, -0.1, 0.4, -0.3, 0.2]  # predicted stable: 0, 2, 4
    m = classification_metrics(true, pred)
    assert (m["stable_true"], m["stable_predicted"]) == (3, 3)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3) and m["prevalence"] == pytest.approx(0.5)
    assert m["daf"] == pytest.approx((2 / 3) / 0.5) and m["accuracy"] == pytest.approx(4 / 6)
    assert classification_metrics([1.0], [1.0])["f1"] == 0.0
    with pytest.raises(ValueError):
        classification_metrics([], [])


def test_top_k_recall():
    r = top_k_recall([-0.1, 0.3, -0.2, 0.5], [0.0, -1.0, -0.5, 2.0], k=2)  # top: 1, 2
    assert r == {"k": 2, "hits": 1, "precision_at_k": 0.5, "recall_at_k": 0.5}


def test_reliability_of_predicted_probabilities():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    stable = rng.uniform(0, 1, p.size) < p  # calibrated by construction
    e_above = np.where(stable, -0.1, 0.1)
    calibrated = reliability(e_above, p)
    assert calibrated["ece"] < 0.01 and len(calibrated["bins"]) == 10
    assert abs(calibrated["brier"] - 1 / 6) < 0.005  # E[p(1-p)] for uniform p
    for b in calibrated["bins"]:
        assert abs(b["predicted"] - b["observed"]) < 0.02
    overconfident = reliability(e_above, np.where(p > 0.5, 1.0, 0.0))  # right 75% of the time, says 100%
    assert abs(overconfident["ece"] - 0.25) < 0.01
    assert [b["bin"] for b in overconfident["bins"]] == ["0.0-0.1", "0.9-1.0"]
    with pytest.raises(ValueError, match="probabilities"):
        reliability([0.1], [1.5])
