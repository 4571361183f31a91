"""Discovery metrics as Matbench Discovery reports them: is "predicted stable" (predicted
distance to the known hull <= 0) right about "stable" (true distance <= 0)?"""

from __future__ import annotations

import numpy as np

from screening.rank_metrics import reliability as frequency_reliability


def classification_metrics(e_above_true, e_above_pred, threshold: float = 0.0) -> dict[str, float]:
    """Precision, recall, F1 of ``e_above_pred <= threshold`` for ``e_above_true <= threshold``,
    accuracy, prevalence of stable compounds, and the discovery acceleration factor
    DAF = precision / prevalence (how much better than picking at random)."""
    true = np.asarray(e_above_true, np.float64) <= threshold
    pred = np.asarray(e_above_pred, np.float64) <= threshold
    if true.shape != pred.shape or true.size == 0:
        raise ValueError(f"need equal, non-empty shapes, got {true.shape} and {pred.shape}")
    tp, fp, fn = int((true & pred).sum()), int((~true & pred).sum()), int((true & ~pred).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    prevalence = float(true.mean())
    return {
        "n": int(true.size),
        "stable_true": int(true.sum()),
        "stable_predicted": int(pred.sum()),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "accuracy": float((true == pred).mean()),
        "prevalence": prevalence,
        "daf": precision / prevalence if prevalence else float("nan"),
    }


def top_k_recall(e_above_true, score, k: int, threshold: float = 0.0) -> dict[str, float]:
    """Of the ``k`` best-ranked candidates (lowest ``score``), how many are truly stable, and
    what share of all stable ones they are."""
    true = np.asarray(e_above_true, np.float64) <= threshold
    top = np.argsort(np.asarray(score, np.float64), kind="stable")[:k]
    hits = int(true[top].sum())
    return {
        "k": int(min(k, true.size)),
        "hits": hits,
        "precision_at_k": hits / max(len(top), 1),
        "recall_at_k": hits / max(int(true.sum()), 1),
    }


def reliability(e_above_true, p_stable, bins: int = 10, threshold: float = 0.0) -> dict:
    """Is a predicted probability of being stable (``p_below_known_hull``) a frequency? The
    reliability table, Brier score and expected calibration error of
    :func:`screening.rank_metrics.reliability`, "stable" being ``e_above_true <= threshold``."""

    return frequency_reliability(np.asarray(e_above_true, np.float64) <= threshold, p_stable, bins)
