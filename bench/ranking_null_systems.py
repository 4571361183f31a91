"""The ranking on grids that mix systems holding a stable compound with systems holding none:
the shipped stacker (fitted without the null systems), one fitted with them, and the shipped
within-system probability times a system-level one (does the system hide a stable compound?).

The grids: the rediscovery benchmark's (bench/rediscovery.py: the systems of val.csv's stable
compounds) plus the systems of val.csv compounds none of which is stable on the hull of
train + val. Every figure is cross-fitted by chemical system; the stacker fitted without null
systems never sees them, so its figures there come from its fit on every positive system.

    .venv/bin/python bench/ranking_null_systems.py --model runs/twin-aux-x3-e140 \\
        --plain runs/twin-aux-x3-e140/rediscovery --with-null runs/rd-null
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from screening.datasets import reference_path
from screening.rank_metrics import reliability, screening_metrics
from screening.stability import (
    STACK_GBM,
    cross_fitted,
    fold_of,
    isotonic_map,
    new_classifier,
    stacker_inputs,
    system_stats,
)
from screening.stability_fit import FOLDS, fit_stability

ROOT = Path(__file__).resolve().parents[1]


def figures(frame, p) -> dict:
    out = {}
    null = ~frame.groupby("chemsys")["stable"].transform("any").to_numpy()
    for k in (3, 4):
        rows = frame["n_elements"].to_numpy() == k
        y, systems = frame["stable"].to_numpy()[rows], frame["chemsys"].to_numpy()[rows]
        mixed, positive = screening_metrics(y, p[rows], systems), ~null[rows]
        plain = screening_metrics(y[positive], p[rows][positive], systems[positive])
        per_null = frame[rows & null].assign(p=p[rows & null]).groupby("chemsys")["p"].agg(["sum", "max"])
        out[str(k)] = {
            "mixed_grid": {m: round(mixed[m], 4) for m in ("prevalence", "precision_top_n", "recall_top_5pct", "auc")}
            | {"ece": round(reliability(y, p[rows])["ece"], 5)},
            "systems_with_a_stable_compound": {m: round(plain[m], 4) for m in ("precision_top_n", "auc")},
            "null_systems": {
                "systems": int(len(per_null)),
                "p_stable_per_system": round(float(per_null["sum"].mean()), 3),
                "with_a_candidate_at_half": round(float((per_null["max"] >= 0.5).mean()), 3),
            },
            "expected_vs_stable": [round(float(p[rows].sum()), 1), int(y.sum())],
        }
    return out


def system_probability(frame, p_within) -> np.ndarray:
    """Per candidate, the probability that its system hides a stable compound: a classifier on
    system-level columns (best evidence, best energies, known compounds, the within-system
    probabilities' sum and maximum), fitted on val's systems with and without one, calibrated,
    nested-cross-fitted by system like the stacker."""
    grouped = frame.assign(p_within=p_within).groupby("chemsys")
    table = pd.concat(
        [
            system_stats(frame),
            grouped.agg(
                n_elements=("n_elements", "first"),
                log_system_known=("log_system_known", "max"),
                log_sub_hull_compounds=("log_sub_hull_compounds", "max"),
                best_e_above_combined=("e_above_combined_hull", "min"),
                within_sum=("p_within", "sum"),
                within_max=("p_within", "max"),
                candidates=("p_within", "size"),
            ),
        ],
        axis=1,
    )
    y = grouped["stable"].any().reindex(table.index).to_numpy()
    x, systems = table.to_numpy(np.float64), table.index.to_numpy()
    fold = fold_of(systems, FOLDS, salt="outer")
    p = np.zeros(len(y))
    for f in range(FOLDS):
        test = fold == f
        knots = isotonic_map(cross_fitted(x[~test], y[~test], systems[~test], folds=3), y[~test])
        model = new_classifier(**STACK_GBM).fit(x[~test], y[~test])
        p[test] = np.interp(model.predict_proba(x[test])[:, 1], *knots)
    return pd.Series(p, index=table.index).reindex(frame["chemsys"]).to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the energy model not trained on val.csv (the twin)")
    parser.add_argument("--plain", required=True, help="work folder of the rediscovery screens without null systems")
    parser.add_argument("--with-null", required=True, help="work folder of the screens with null systems")
    args = parser.parse_args()
    known, hidden = [str(reference_path("mp_e_form", "train"))], str(reference_path("mp_e_form", "val"))
    quiet = lambda message: None  # noqa: E731
    plain = fit_stability(args.model, known, hidden, args.plain, log=quiet, null_systems=False)
    mixed = fit_stability(args.model, known, hidden, args.with_null, log=quiet, null_systems=True)
    frame = mixed.frame
    # the stacker fitted without null systems: cross-fitted on the positive systems, its full fit on the null ones
    key = lambda f: f["chemsys"] + " " + f["formula"]  # noqa: E731
    cross = dict(zip(key(plain.frame), plain.frame["p_stable"]))
    null = ~frame.groupby("chemsys")["stable"].transform("any").to_numpy()
    full = plain.model.probability(stacker_inputs(frame, system_stats(frame)))
    p_plain = np.where(null, full, key(frame).map(cross).to_numpy(np.float64))
    if np.isnan(p_plain).any():
        raise RuntimeError("the two work folders do not hold the same positive systems")
    report = {
        "without_null_systems": figures(frame, p_plain),
        "with_null_systems": figures(frame, frame["p_stable"].to_numpy()),
        "system_times_within_system": figures(frame, p_plain * system_probability(frame, p_plain)),
        "reproduce": ".venv/bin/python bench/ranking_null_systems.py "
        f"--model {args.model} --plain {args.plain} --with-null {args.with_null}",
    }
    print(json.dumps(report, indent=2))
    (ROOT / "bench" / "results" / "ranking-null-systems.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
