"""The screening situation: rediscover hidden stable compounds among every composition of their
chemical systems, at the ~1% prevalence of a real screen.

Known: mp_e_form train.csv. Hidden: val.csv (no composition of it is in train). Positives: hidden
compounds on the hull of train + val (DFT energies) with 3 or 4 elements and at most 10 atoms
per formula unit. Each positive's system is screened by our own ``screen`` (every <= 10-atom
composition not already known; hidden compounds of fewer elements given as known); everything
else enumerated is presumed unstable. The energy model must not have trained on val.csv (use
the shipped recipe's train-only twin).

Rankings compared, ternaries and quaternaries apart: random, the charge-neutrality filter,
stoichiometry frequency, energy above the known hull alone, energy above the combined hull,
``p_below_known_hull``, the evidence stage alone, and ``p_stable`` (evidence + energies, stacked
and calibrated). The evidence stage is fitted on rediscovery situations made from train.csv
alone; the stacker and its calibration are cross-fitted by chemical system (each system scored
by models that never saw it; calibration nested inside), so no figure comes from rows a model
was fitted on. ``--save DIR`` also writes the stability model fitted on every row to DIR.

    .venv/bin/python bench/rediscovery.py --model runs/twin-aux-x3-e40
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from screening.composition import parse_formulas
from screening.datasets import load_reference, reference_path
from screening.elements import SYMBOLS
from screening.evidence import FEATURES, KnownCompounds, _composition_key, _Counter
from screening.models.card import trained_on
from screening.models.fit import load_model
from screening.rank_metrics import reliability, screening_metrics
from screening.rediscovery import Situation, simulated, situations, evidence_table
from screening.screen import ScreenRequest, screen
from screening.stability import (GBM, StabilityModel, cross_fitted, fold_of, isotonic_map, logit, new_classifier,
                                 stacker_inputs, system_stats)  # fmt: skip

FOLDS = 5


def screened(situation: Situation, model: str, work: Path, train_csv: Path) -> pd.DataFrame:
    """Screen the situation's systems with our own pipeline; its ranked table, labelled."""
    given = work / f"given-{situation.arity}.csv"  # hidden compounds of fewer elements, given as known
    n_train = len(load_reference("mp_e_form", "train"))
    extra = situation.known.select(np.arange(n_train, len(situation.known)))
    pd.DataFrame({"formula": extra.formula, "target": situation.known_energy[n_train:]}).to_csv(given, index=False)
    systems = [[SYMBOLS[z - 1] for z in s] for s in situation.systems]
    out = work / f"screen-{situation.arity}"
    if not (out / "ranked.parquet").exists():
        request = ScreenRequest(model=model, out=str(out), systems=systems, max_arity=situation.arity, max_atoms=10,
                                reference=[str(train_csv), str(given)], chunk_size=50_000, device="cpu")  # fmt: skip
        screen(request, progress=False, workers=0)
    frame = pd.read_parquet(out / "ranked.parquet")
    batch, rejected = parse_formulas(frame["formula"].tolist())
    if rejected or len(frame) != len(situation.candidates):
        raise RuntimeError(f"the screen gave {len(frame):,} candidates, the situation has {len(situation.candidates):,}")
    frame["stable"] = _Counter(_composition_key(situation.positives))(_composition_key(batch)) > 0
    if frame["stable"].sum() != situation.stable.sum():
        raise RuntimeError("the screen's candidates do not hold the situation's positives")
    features = KnownCompounds(situation.known, situation.known_energy).features(batch)
    return frame, features


def fit_evidence(train_batch, train_energy, seeds: int, log) -> object:
    tables, labels = [], []
    for seed, situation in simulated(train_batch, train_energy, seeds=range(seeds)):
        tables.append(evidence_table(situation))
        labels.append(situation.stable)
        log(f"evidence situation seed {seed}, {situation.arity} elements: {len(situation.stable):,} candidates, {int(situation.stable.sum())} stable")
    x, y = np.vstack(tables), np.concatenate(labels)
    return new_classifier(**GBM).fit(x, y), {"situations": len(tables), "candidates": len(y), "stable": int(y.sum()), "seeds": seeds}


def nested_p_stable(s: np.ndarray, y: np.ndarray, systems: np.ndarray) -> np.ndarray:
    """Stacker + isotonic map, both fitted without the scored systems (calibration on the
    inner cross-fitted predictions of the outer training systems)."""
    fold = fold_of(systems, FOLDS, salt="outer")
    p = np.zeros(len(y))
    for f in range(FOLDS):
        test = fold == f
        inner = cross_fitted(s[~test], y[~test], systems[~test], folds=3)
        knots = isotonic_map(inner, y[~test])
        model = new_classifier(**_stack_settings()).fit(s[~test], y[~test])
        p[test] = np.interp(model.predict_proba(s[test])[:, 1], *knots)
    return p


def _stack_settings() -> dict:
    from screening.stability import STACK_GBM

    return STACK_GBM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="energy model not trained on val.csv (the shipped recipe's twin)")
    parser.add_argument("--work", default="runs/rediscovery", help="folder for the screens and caches")
    parser.add_argument("--seeds", type=int, default=3, help="random tenths of train.csv hidden to fit the evidence stage")
    parser.add_argument("--save", help="also fit the stability model on every row and write it to this model folder")
    parser.add_argument("--out", help="write the report (JSON) here as well")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    model = load_model(args.model, "cpu")
    hidden_path, train_path = reference_path("mp_e_form", "val"), reference_path("mp_e_form", "train")
    if trained_on(model.card, hidden_path):
        raise SystemExit(f"{args.model} was trained on {hidden_path}, the hidden set of this benchmark; use its train-only twin")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    known, hidden = load_reference("mp_e_form", "train"), load_reference("mp_e_form", "val")
    kb, _ = parse_formulas(known["formula"].tolist())
    hb, _ = parse_formulas(hidden["formula"].tolist())
    ke, he = known["target"].to_numpy()[kb.index], hidden["target"].to_numpy()[hb.index]
    frames, tables = [], []
    for situation in situations(kb, ke, hb, he):
        frame, features = screened(situation, args.model, work, train_path)
        log(f"screened {situation.arity}-element systems: {len(frame):,} candidates in {len(situation.systems)} systems, {int(frame['stable'].sum())} stable")
        frames.append(frame)
        tables.append(features)
    frame, features = pd.concat(frames, ignore_index=True), np.vstack(tables)
    evidence, evidence_record = fit_evidence(kb, ke, args.seeds, log)
    frame["evidence"] = evidence.predict_proba(features)[:, 1]
    frame["evidence_logit"] = logit(frame["evidence"].to_numpy())
    for name in ("log_system_known", "log_sub_hull_compounds"):
        frame[name] = features[:, FEATURES.index(name)]
    uncertainty = model.card.get("uncertainty")
    s = stacker_inputs(frame, system_stats(frame), uncertainty)
    y, systems = frame["stable"].to_numpy(), frame["chemsys"].to_numpy()
    frame["p_stable"] = nested_p_stable(s, y, systems)
    log("stacker cross-fitted")

    charge = features[:, FEATURES.index("charge_balanced_ordered")].astype(bool) | features[:, FEATURES.index("all_metal")].astype(bool)
    rankings = {
        "random": np.zeros(len(frame)),
        "charge-neutral filter": charge.astype(float),
        "stoichiometry frequency": features[:, FEATURES.index("log_same_anonymous")],
        "energy above known hull": -frame["e_above_known_hull"].to_numpy(),
        "energy above combined hull": -frame["e_above_combined_hull"].to_numpy(),
        "p_below_known_hull (energy ranking)": frame["p_below_known_hull"].to_numpy(),
        "evidence stage alone": frame["evidence"].to_numpy(),
        "p_stable": frame["p_stable"].to_numpy(),
    }
    report = {"model": args.model, "evidence_stage": evidence_record, "arity": {}}
    for k in (3, 4):
        rows = frame["n_elements"].to_numpy() == k
        report["arity"][k] = {
            "rankings": {name: screening_metrics(y[rows], score[rows], systems[rows]) for name, score in rankings.items()},
            "reliability": {"p_stable": reliability(y[rows], frame["p_stable"].to_numpy()[rows]),
                            "p_below_known_hull": reliability(y[rows], frame["p_below_known_hull"].to_numpy()[rows])},  # fmt: skip
        }
    report["reliability_all"] = reliability(y, frame["p_stable"].to_numpy())
    report["charge_neutral_filter"] = {"stable_kept": float(charge[y].mean()), "precision": float(y[charge].mean())}
    report["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(report, indent=2, default=float)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    _print_table(report)
    if args.save:
        knots = isotonic_map(cross_fitted(s, y, systems, folds=FOLDS), y)
        stacker = new_classifier(**_stack_settings()).fit(s, y)
        record = {"fitted_on": {"known": str(train_path), "hidden": str(hidden_path), "energy_model": args.model,
                                "candidates": int(len(y)), "stable": int(y.sum()), "systems": int(pd.Series(systems).nunique())},
                  "evidence_stage": evidence_record,
                  "benchmark": {str(k): {name: report["arity"][k]["rankings"]["p_stable"][name] for name in
                                         ("prevalence", "precision_top_n", "enrichment_top_n", "recall_top_1pct", "recall_top_5pct", "auc", "first_of_system")}
                                | {"ece": report["arity"][k]["reliability"]["p_stable"]["ece"]} for k in (3, 4)},
                  "command": "python bench/rediscovery.py " + " ".join(sys.argv[1:])}  # fmt: skip
        path = StabilityModel(evidence, stacker, knots, record).save(args.save)
        log(f"stability model written: {path}")
    print(f"reproduce: .venv/bin/python bench/rediscovery.py {' '.join(sys.argv[1:])}")


def _print_table(report: dict) -> None:
    for k, part in report["arity"].items():
        first = next(iter(part["rankings"].values()))
        print(f"\n{k} elements: {first['candidates']:,} candidates, {first['stable']} stable ({first['prevalence']:.2%}), {first['systems']} systems")
        print(f"{'ranking':38s} {'top-N P':>8s} {'enrich':>7s} {'R@1%':>6s} {'R@5%':>6s} {'AUC':>6s} {'first':>6s}")
        for name, m in part["rankings"].items():
            print(f"{name:38s} {m['precision_top_n']:8.3f} {m['enrichment_top_n']:7.1f} {m['recall_top_1pct']:6.3f} "
                  f"{m['recall_top_5pct']:6.3f} {m['auc']:6.3f} {m['first_of_system']:6.3f}")  # fmt: skip
        r = part["reliability"]["p_stable"]
        print(f"p_stable on the grid: Brier {r['brier']:.4f}, ECE {r['ece']:.4f}, P>=0.5: {r['at_least_half']['n']} candidates, "
              f"mean P {r['at_least_half']['predicted']:.3f}, stable {r['at_least_half']['observed']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
