"""Fitting the stability model (:mod:`screening.stability`) and measuring it in the screening
situation, from a known table, a hidden table and an energy model that did not train on the
hidden one (the shipped recipe's train-only twin).

The hidden compounds' systems are screened by our own :func:`screening.screen.screen`; the
evidence stage is fitted on rediscovery situations made from the known table alone; the
stacker and its isotonic calibration are measured by cross-fitting by chemical system (each
system scored by models that never saw it, the calibration nested inside), then fitted on
every row for use.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from screening.composition import CompositionBatch, parse_formulas
from screening.cross_fit import FOLDS, cross_fitted, isotonic_map, nested_p_stable
from screening.datasets import sha256_of
from screening.elements import SYMBOLS
from screening.evidence import FEATURES, KnownCompounds, _composition_key
from screening.models.ensemble import load_model
from screening.rank_metrics import reliability, screening_metrics
from screening.rediscovery import Situation, evidence_table, simulated, situations
from screening.request import ScreenRequest
from screening.row_lookup import RowCounter
from screening.screen import screen
from screening.screen_plan import read_reference
from screening.stability import (
    GBM,
    STACK_GBM,
    StabilityModel,
    logit,
    new_classifier,
    stacker_inputs,
    system_stats,
)
from screening.system_fit import attach_system, null_system_figures
from screening.tree_predict import positive_probability

SEEDS = 3  # random tenths of the known table hidden to fit the evidence stage


@dataclass
class Fitted:
    model: StabilityModel
    frame: pd.DataFrame  # every screened candidate: scored columns, stable, evidence, cross-fitted p_stable
    features: np.ndarray  # their evidence features
    report: dict


def read_table(paths: list[str]) -> tuple[CompositionBatch, np.ndarray]:
    """Known or hidden compounds as the screen reads them (:func:`screening.screen_plan.read_reference`:
    lowest energy per composition); a row that cannot be used is an error here, not a rejection."""

    batch, energy, rejected = read_reference(paths)
    if len(rejected):
        raise ValueError(
            f"{', '.join(map(str, paths))}: {len(rejected)} rows cannot be used (first: "
            f"{rejected['formula'].iloc[0]!r}, {rejected['reason'].iloc[0]}); clean the table first"
        )
    return batch, energy


def screened(situation: Situation, model: str, work: Path, known_paths: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Screen the situation's systems with our own pipeline: its ranked table, labelled, and
    the candidates' evidence features."""

    given = work / f"given-{situation.arity}.csv"  # hidden compounds of fewer elements, given as known
    extra = np.arange(situation.n_known_table, len(situation.known))
    pd.DataFrame({"formula": situation.known.formula[extra], "target": situation.known_energy[extra]}).to_csv(
        given, index=False
    )
    out = work / (f"screen-{situation.arity}" + ("-with-null-systems" if situation.null_systems else ""))
    if not (out / "ranked.parquet").exists():
        systems = [[SYMBOLS[z - 1] for z in s] for s in situation.systems]
        request = ScreenRequest(
            model=model,
            out=str(out),
            systems=systems,
            max_arity=situation.arity,
            max_atoms=10,
            reference=[*known_paths, str(given)],
            chunk_size=50_000,
            device="cpu",
        )
        screen(request, progress=False, workers=0)
    frame = pd.read_parquet(out / "ranked.parquet")
    batch, rejected = parse_formulas(frame["formula"].tolist())
    if rejected or len(frame) != len(situation.candidates):
        raise RuntimeError(
            f"the screen in {out} gave {len(frame):,} candidates, the situation has {len(situation.candidates):,}"
        )
    frame["stable"] = RowCounter(_composition_key(situation.positives))(_composition_key(batch)) > 0
    if frame["stable"].sum() != situation.stable.sum():
        raise RuntimeError(f"the screen in {out} does not hold the situation's positives")
    return frame, KnownCompounds(situation.known, situation.known_energy).features(batch)


def fit_evidence(batch: CompositionBatch, energy: np.ndarray, seeds: int = SEEDS, log: Callable[[str], None] = print):
    tables, labels = [], []
    for seed, situation in simulated(batch, energy, seeds=range(seeds)):
        tables.append(evidence_table(situation))
        labels.append(situation.stable)
        log(
            f"evidence situation {seed}, {situation.arity} elements: {len(situation.stable):,} candidates, "
            f"{int(situation.stable.sum())} stable"
        )
    if not tables:
        raise ValueError("the known tables are too small to hide stable compounds of 2 to 4 elements from")
    x, y = np.vstack(tables), np.concatenate(labels)
    record = {
        "seeds": seeds,
        "hidden_share": 0.1,
        "situations": len(tables),
        "candidates": int(len(y)),
        "stable": int(y.sum()),
    }
    return new_classifier(**GBM).fit(x, y), record


def fit_stability(
    energy_model: str,
    known_paths: list[str],
    hidden_path: str,
    work: str | Path,
    seeds: int = SEEDS,
    log: Callable[[str], None] = print,
    null_systems: bool = False,
    system_level: bool = False,
) -> Fitted:
    """Screen the hidden table's situations with ``energy_model``, fit both stages, measure
    them cross-fitted, and fit the stacker on every row (see the module's docstring).
    ``null_systems``: the stacker also sees the grids of the hidden compounds' systems that hold
    no stable compound, so that p_stable is not promised where a system hides none (measured in
    ``bench/ranking_null_systems.py``; not the shipped procedure: it costs precision within the
    systems that do hold one); the benchmark is reported on the systems that hold one (as without
    them) and on the null ones. ``system_level`` (the shipped procedure): the grids of null
    systems are screened too, but the stacker is fitted and measured on the systems that hold a
    stable compound only (as without them); the system-level classifier (``p_system``: does a
    system hide one?) is fitted on all of them (:func:`fit_system`) and rides with the model."""
    if null_systems and system_level:
        raise ValueError("null_systems (a stacker fitted on null systems too) and system_level exclude each other")

    started = time.perf_counter()
    model = load_model(energy_model, "cpu")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    kb, ke = read_table(list(known_paths))
    hb, he = read_table([hidden_path])
    frames, tables = [], []
    found = situations(kb, ke, hb, he, null_systems=null_systems or system_level)
    if not found:
        raise ValueError(
            f"{hidden_path} holds no compound of 2 to 4 elements (<= 10 atoms) on the hull of all compounds: "
            "nothing to fit the ranking on; give a larger validation table"
        )
    for situation in found:
        frame, features = screened(situation, energy_model, work, known_paths)
        log(
            f"screened the {situation.arity}-element systems: {len(frame):,} candidates in {len(situation.systems)} "
            f"systems, {int(frame['stable'].sum())} stable"
        )
        frames.append(frame)
        tables.append(features)
    frame, features = pd.concat(frames, ignore_index=True), np.vstack(tables)
    evidence, evidence_record = fit_evidence(kb, ke, seeds, log)
    frame["evidence"] = positive_probability(evidence, features)
    frame["evidence_logit"] = logit(frame["evidence"].to_numpy())
    for name in ("log_system_known", "log_sub_hull_compounds"):
        frame[name] = features[:, FEATURES.index(name)]
    null = ~frame.groupby("chemsys")["stable"].transform("any").to_numpy()
    fit = ~null if system_level else np.ones(len(frame), bool)  # the rows the stacker learns from
    s = stacker_inputs(frame, system_stats(frame))  # per system: the same for a row whatever else is there
    y, systems = frame["stable"].to_numpy(), frame["chemsys"].to_numpy()
    p = nested_p_stable(s, y, systems, fit)  # the systems it does not learn from too, by the same fold models
    log("stacker measured (cross-fitted by system)")
    knots = isotonic_map(cross_fitted(s[fit], y[fit], systems[fit], folds=FOLDS), y[fit])
    stacker = new_classifier(**STACK_GBM).fit(s[fit], y[fit])
    stability = StabilityModel(evidence, stacker, knots)
    frame["p_stable"] = p
    report = benchmark_report(frame[~null].reset_index(drop=True), features[~null])
    report["null_systems"] = null_system_figures(frame[null])
    if null.any():
        report["with_null_systems"] = {
            k: summary_figures(part) for k, part in benchmark_report(frame, features)["arity"].items()
        }
    record = {
        "fitted_on": {
            "known": list(map(str, known_paths)),
            "hidden": str(hidden_path),
            "known_sha256": [sha256_of(p) for p in known_paths],  # the tables by content (a registry's benchmark)
            "hidden_sha256": sha256_of(hidden_path),
            "energy_model": str(energy_model),
            "energy_model_uncertainty": model.card.get("uncertainty"),
            "candidates": int(len(y)),
            "stable": int(y.sum()),
            "systems": int(pd.Series(systems).nunique()),
        },
        "evidence_stage": evidence_record,
        "settings": {"evidence": GBM, "stacker": STACK_GBM, "folds": FOLDS},
        "benchmark": {k: summary_figures(part) for k, part in report["arity"].items()},
        "null_systems": report["null_systems"],
        "benchmark_with_null_systems": report.get("with_null_systems", {}),
        "seconds": round(time.perf_counter() - started, 1),
    }
    stability.record = record
    if system_level:
        attach_system(stability, frame, log)
    return Fitted(stability, frame, features, report)


def summary_figures(part: dict) -> dict:
    m, r = part["rankings"]["p_stable"], part["reliability"]["p_stable"]
    keys = (
        "candidates",
        "stable",
        "systems",
        "prevalence",
        "precision_top_n",
        "enrichment_top_n",
        "recall_top_1pct",
        "recall_top_5pct",
        "auc",
        "first_of_system",
    )
    return {k: m[k] for k in keys} | {"ece": r["ece"], "brier": r["brier"], "at_least_half": r["at_least_half"]}


def benchmark_report(frame: pd.DataFrame, features: np.ndarray) -> dict:
    """Every ranking of the comparison, ternaries and quaternaries apart, and the reliability
    of the probability columns on the grid."""
    y, systems = frame["stable"].to_numpy(), frame["chemsys"].to_numpy()
    charge = features[:, FEATURES.index("charge_balanced_ordered")].astype(bool) | features[
        :, FEATURES.index("all_metal")
    ].astype(bool)
    rankings = {
        "random": np.zeros(len(frame)),
        "charge-neutral filter": charge.astype(float),
        "stoichiometry frequency": features[:, FEATURES.index("log_same_anonymous")],
        "energy above known hull": -frame["e_above_known_hull"].to_numpy(),
        "energy above combined hull": -frame["e_above_combined_hull"].to_numpy(),
        "p_below_known_hull": frame["p_below_known_hull"].to_numpy(),
        "evidence stage alone": frame["evidence"].to_numpy(),
        "p_stable": frame["p_stable"].to_numpy(),
    }
    report: dict = {"arity": {}}
    for k in sorted(frame["n_elements"].unique()):
        rows = frame["n_elements"].to_numpy() == k
        report["arity"][str(k)] = {
            "rankings": {
                name: screening_metrics(y[rows], score[rows], systems[rows]) for name, score in rankings.items()
            },
            "reliability": {
                "p_stable": reliability(y[rows], frame["p_stable"].to_numpy()[rows]),
                "p_below_known_hull": reliability(y[rows], frame["p_below_known_hull"].to_numpy()[rows]),
            },
            "charge_neutral_filter": {
                "stable_kept": float(charge[rows][y[rows]].mean()),
                "precision": float(y[rows][charge[rows]].mean()),
            },
        }
    report["reliability_all"] = reliability(y, frame["p_stable"].to_numpy())
    return report
