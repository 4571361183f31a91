"""How good is a ranking of an enumerated chemical space, where few candidates are stable?

Pure functions of three arrays: whether each candidate is stable, its score (higher = ranked
first) and its chemical system. Ties are scored at their expected value under a random order
among the tied (a constant score earns the prevalence, never a lucky input order).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata


def _checked(stable, score) -> tuple[np.ndarray, np.ndarray]:
    stable = np.asarray(stable, bool)
    score = np.asarray(score, np.float64)
    if stable.shape != score.shape or stable.ndim != 1 or stable.size == 0:
        raise ValueError(f"need two equal, non-empty 1-d arrays, got {stable.shape} and {score.shape}")
    if not np.isfinite(score).all():
        raise ValueError(f"scores hold {int((~np.isfinite(score)).sum())} values that are not finite numbers")
    return stable, score


def hits_in_top(stable, score, k: int) -> float:
    """Expected number of stable candidates among the ``k`` best-scored."""
    stable, score = _checked(stable, score)
    k = int(min(max(k, 0), len(score)))
    if k == 0:
        return 0.0
    cut = np.sort(score)[::-1][k - 1]
    above, tied = score > cut, score == cut
    return float(stable[above].sum() + (k - above.sum()) * stable[tied].mean())


def auc(stable, score) -> float:
    """Area under the ROC curve: the chance that a stable candidate outranks an unstable one
    (ties count one half)."""
    stable, score = _checked(stable, score)
    n_pos, n_neg = int(stable.sum()), int((~stable).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[stable].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def first_of_system(stable, score, system) -> float:
    """Share of the systems holding a stable candidate whose best-scored candidate is stable."""
    stable, score = _checked(stable, score)
    frame = pd.DataFrame({"stable": stable, "score": score, "system": np.asarray(system)})
    frame = frame[frame.groupby("system")["stable"].transform("any")]
    if frame.empty:
        return float("nan")
    best = frame[frame["score"] == frame.groupby("system")["score"].transform("max")]
    return float(best.groupby("system")["stable"].mean().mean())


def screening_metrics(stable, score, system) -> dict[str, float]:
    """The figures of a screen: precision of the top N (N = number stable) and its enrichment
    over picking at random, recall in the top 1% and 5%, AUC, and the share of systems whose
    first candidate is stable."""
    stable, score = _checked(stable, score)
    n, n_stable = len(stable), int(stable.sum())
    prevalence = n_stable / n
    precision = hits_in_top(stable, score, n_stable) / n_stable if n_stable else float("nan")
    return {
        "candidates": n,
        "stable": n_stable,
        "systems": int(pd.Series(np.asarray(system)).nunique()),
        "prevalence": prevalence,
        "precision_top_n": precision,
        "enrichment_top_n": precision / prevalence if n_stable else float("nan"),
        "recall_top_1pct": hits_in_top(stable, score, round(0.01 * n)) / n_stable if n_stable else float("nan"),
        "recall_top_5pct": hits_in_top(stable, score, round(0.05 * n)) / n_stable if n_stable else float("nan"),
        "auc": auc(stable, score),
        "first_of_system": first_of_system(stable, score, system),
    }


def reliability(stable, probability, bins: int = 10) -> dict:
    """Does a probability mean what it says? Per bin of predicted probability: count, mean
    prediction, observed share stable; the Brier score, the expected calibration error
    (bin-weighted |predicted - observed|), and the same comparison for all candidates given
    at least 0.5."""
    stable = np.asarray(stable, bool).astype(np.float64)
    p = np.asarray(probability, np.float64)
    if stable.shape != p.shape or stable.size == 0 or not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("need equal, non-empty shapes and probabilities in [0, 1]")
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            predicted, observed = float(p[inside].mean()), float(stable[inside].mean())
            table.append(
                {
                    "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}",
                    "n": int(inside.sum()),
                    "predicted": predicted,
                    "observed": observed,
                }
            )
            ece += inside.mean() * abs(predicted - observed)
    high = p >= 0.5
    return {
        "brier": float(((p - stable) ** 2).mean()),
        "ece": float(ece),
        "at_least_half": {
            "n": int(high.sum()),
            "predicted": float(p[high].mean()) if high.any() else float("nan"),
            "observed": float(stable[high].mean()) if high.any() else float("nan"),
        },
        "bins": table,
    }
