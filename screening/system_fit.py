"""The system-level classifier (``p_system``): does a chemical system hide a stable compound
that the reference data lacks? Fitted on the screened candidates of systems with and without
one, each system's ``p_stable`` from stackers that never saw it, and measured nested-cross-fitted
by system like the stacker (:mod:`screening.cross_fit`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from screening.cross_fit import FOLDS, cross_fitted, isotonic_map, nested_p_stable
from screening.rank_metrics import auc, reliability
from screening.stability import STACK_GBM, StabilityModel, new_classifier, system_table


@dataclass
class FittedSystem:
    classifier: object
    calibration: tuple[np.ndarray, np.ndarray]
    cross_fitted: pd.Series  # per system (index chemsys): p_system from models that did not see it
    figures: dict  # systems, how many hide a stable compound, cross-fitted AUC and ECE


def fit_system(frame: pd.DataFrame) -> FittedSystem:
    """The system-level classifier: does a system hide a stable compound? ``frame``: screened
    candidates of systems with and without one (``stable``, ``p_stable`` from stackers that did
    not see their system, and the scored columns). Calibrated by isotonic regression; measured
    nested-cross-fitted by system like the stacker."""
    table = system_table(frame)
    y = frame.groupby("chemsys")["stable"].any().reindex(table.index).to_numpy()
    x, systems = table.to_numpy(np.float64), table.index.to_numpy()
    p = nested_p_stable(x, y, systems)  # the stacker's nested cross-fit, on systems instead of candidates
    knots = isotonic_map(cross_fitted(x, y, systems, folds=FOLDS), y)
    figures = {
        "systems": int(len(y)),
        "hide_a_stable_compound": int(y.sum()),
        "auc": round(auc(y, p), 4),
        "ece": round(reliability(y, p)["ece"], 4),
    }
    return FittedSystem(new_classifier(**STACK_GBM).fit(x, y), knots, pd.Series(p, index=table.index), figures)


def attach_system(model: StabilityModel, frame: pd.DataFrame, log=print) -> FittedSystem:
    """Fit the system-level classifier on ``frame`` (screened candidates of systems with and
    without a stable compound, ``p_stable`` from stackers that did not see their system) and put
    it in ``model`` with its cross-fitted figures."""
    system = fit_system(frame)
    model.system, model.system_calibration = system.classifier, system.calibration
    model.record["system"] = dict(system.figures)
    log(
        f"system-level classifier (p_system): {system.figures['systems']:,} systems, "
        f"{system.figures['hide_a_stable_compound']:,} hide a stable compound; "
        f"cross-fitted AUC {system.figures['auc']:.3f}"
    )
    return system


def null_system_figures(frame: pd.DataFrame) -> dict:
    """Per arity, over systems that hold no stable compound: what p_stable (cross-fitted)
    promises there in vain."""
    out = {}
    for k, part in frame.groupby("n_elements"):
        per_system = part.groupby("chemsys")["p_stable"].agg(["sum", "max"])
        out[str(int(k))] = {
            "systems": int(len(per_system)),
            "candidates": int(len(part)),
            "p_stable_per_system": float(per_system["sum"].mean()),
            "systems_with_a_candidate_at_half": float((per_system["max"] >= 0.5).mean()),
        }
    return out
