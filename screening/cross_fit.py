"""Fitting by chemical system, so that no figure and no probability comes from a model that saw
the system it describes: folds by a hash of the system, out-of-fold probabilities, isotonic
maps, and the nested cross-fit of a calibrated stacker (:func:`nested_p_stable`), used for the
candidates' ``p_stable`` and for the systems' ``p_system`` alike."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from screening.stability import STACK_GBM, new_classifier
from screening.tree_predict import positive_probability

FOLDS = 5


def isotonic_map(raw: np.ndarray, stable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots of the isotonic regression of ``stable`` on ``raw`` (a step function, used with
    linear interpolation between knots; clipped to [0, 1])."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, stable.astype(np.float64))
    return np.asarray(iso.X_thresholds_, np.float64), np.asarray(iso.y_thresholds_, np.float64)


def fold_of(systems: np.ndarray, folds: int, salt: str = "") -> np.ndarray:
    """A fold per row by a hash of its chemical system: the same system always falls in the
    same fold, whatever else is in the table."""
    codes = pd.Series(systems).astype(str)
    unique = codes.unique()
    fold = {s: int(hashlib.sha256((salt + s).encode()).hexdigest()[:8], 16) % folds for s in unique}
    return codes.map(fold).to_numpy()


def cross_fitted(
    features: np.ndarray, stable: np.ndarray, systems: np.ndarray, folds: int = 5, settings: dict | None = None
) -> np.ndarray:
    """Out-of-fold probabilities: each system scored by a classifier fitted on the others."""
    fold = fold_of(systems, folds)
    out = np.zeros(len(stable))
    for f in range(folds):
        test = fold == f
        model = new_classifier(**(settings or STACK_GBM)).fit(features[~test], stable[~test])
        out[test] = positive_probability(model, features[test])
    return out


def nested_p_stable(s: np.ndarray, y: np.ndarray, systems: np.ndarray, fit: np.ndarray | None = None) -> np.ndarray:
    """Stacker + isotonic map, both fitted without the scored systems (the calibration on the
    inner cross-fitted predictions of the outer training systems). Rows are candidates, or
    systems for the system-level classifier. ``fit``: the rows the models learn from (default
    all). Every row, in ``fit`` or not, is scored by the model of its system's fold, so that
    rows the stacker never learns from (the systems that hold no stable compound) get their
    probability the same way as the others: a system-level classifier fitted on both kinds must
    not be able to tell them apart by how their ``p_stable`` was made. (It could, when those
    systems were scored by the full stacker: nested-cross-fitted AUC 0.94, but 0.67 once every
    system's ``p_stable`` came from one model, as in a screen.)"""
    fold = fold_of(systems, FOLDS, salt="outer")
    fit = np.ones(len(y), bool) if fit is None else fit
    p = np.zeros(len(y))
    for f in range(FOLDS):
        test, train = fold == f, (fold != f) & fit
        knots = isotonic_map(cross_fitted(s[train], y[train], systems[train], folds=3), y[train])
        model = new_classifier(**STACK_GBM).fit(s[train], y[train])
        p[test] = np.interp(model.predict_proba(s[test])[:, 1], *knots)
    return p
