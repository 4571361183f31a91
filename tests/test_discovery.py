import pytest

from screening.discovery import classification_metrics, top_k_recall


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
