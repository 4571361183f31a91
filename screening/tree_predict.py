"""The stability model's gradient-boosted trees, evaluated at screening scale.

scikit-learn's ``HistGradientBoostingClassifier.predict_proba`` walks every tree over the raw
float64 features: 300 trees read a 50,000-row chunk's 16 MB of features 300 times (0.65 s per
chunk on one core, most of it memory traffic). The trees were grown on the features' bins, and
a split ``x <= threshold`` is exactly ``bin(x) <= bin(threshold)``, so walking them over the
uint8 bins (2 MB, cache-resident) gives the same sums, bit for bit, in a third of the time.
Anything that is not a binary classifier on numeric features takes the library's own path.
"""

from __future__ import annotations

import numpy as np


def positive_probability(classifier, features: np.ndarray) -> np.ndarray:
    """``classifier.predict_proba(features)[:, 1]``, identical, faster for histogram GBMs; no
    rows give no probabilities (scikit-learn refuses an empty array)."""
    if len(features) == 0:
        return np.zeros(0)
    if not _walks_bins(classifier):
        return classifier.predict_proba(features)[:, 1]
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    features = classifier._preprocess_X(features, reset=False)  # the library's own checks
    binned = classifier._bin_mapper.transform(features)
    raw = np.zeros((len(features), 1), dtype=classifier._baseline_prediction.dtype, order="F")
    raw += classifier._baseline_prediction  # the sums in the library's order: bit-identical
    missing, threads = classifier._bin_mapper.missing_values_bin_idx_, _openmp_effective_n_threads()
    for (tree,) in classifier._predictors:
        raw[:, 0] += tree.predict_binned(binned, missing, threads)
    return classifier._loss.predict_proba(raw)[:, 1]


def _walks_bins(classifier) -> bool:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return (
        isinstance(classifier, HistGradientBoostingClassifier)
        and getattr(classifier, "n_trees_per_iteration_", None) == 1
        and getattr(classifier, "is_categorical_", None) is None
        and all(hasattr(classifier, a) for a in ("_bin_mapper", "_predictors", "_baseline_prediction", "_loss"))
    )


def rounding_splits(classifier, names, tolerance: float = 1e-9) -> list[str]:
    """The features of a histogram GBM (``names``, in order) with bin thresholds inside rounding
    noise: two thresholds closer than ``tolerance`` (relative, at least absolute), or one within
    it of 0 but not 0. A feature of many distinct values gets its thresholds at quantiles, which
    land on both twins of a value computed two ways (0.05 and 0.05 - 1 ulp; a hull distance of
    +-1e-15) when both carry much of the data; a tree that splits between them makes its output
    depend on how the value was computed. (A lone threshold between two twins among few distinct
    values is not seen.) Empty for anything but a fitted histogram GBM."""
    mapper = getattr(classifier, "_bin_mapper", None)
    if mapper is None:
        return []
    found = []
    for name, thresholds in zip(names, mapper.bin_thresholds_):
        thresholds = np.asarray(thresholds, np.float64)
        twins = np.diff(thresholds) < tolerance * np.maximum(1.0, np.abs(thresholds[1:]))
        if twins.any() or ((np.abs(thresholds) < tolerance) & (thresholds != 0)).any():
            found.append(name)
    return found
