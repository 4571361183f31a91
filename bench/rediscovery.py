"""The screening situation: rediscover hidden stable compounds among every composition of their
chemical systems, at the ~1% prevalence of a real screen.

Known: mp_e_form train.csv. Hidden: val.csv (no composition of it is in train). Positives: hidden
compounds on the hull of train + val (DFT energies) with 2, 3 or 4 elements and at most 10 atoms
per formula unit (ternaries and quaternaries are the screening situation's targets; binaries are
reported too, since screens hold them). Each positive's system is screened by our own ``screen`` (every <= 10-atom
composition not already known; hidden compounds of fewer elements given as known); everything
else enumerated is presumed unstable. The energy model must not have trained on val.csv (the
shipped recipe's train-only twin).

Rankings compared, by number of elements: random, the charge-neutrality filter,
stoichiometry frequency, energy above the known hull alone, energy above the combined hull,
``p_below_known_hull``, the evidence stage alone, and ``p_stable``. The evidence stage is fitted
on rediscovery situations made from train.csv alone; the stacker and its calibration are
cross-fitted by chemical system (:mod:`screening.stability_fit`), so no figure comes from rows
a model was fitted on. ``--save DIR`` also writes the stability model fitted on every row.

    .venv/bin/python bench/rediscovery.py --model runs/twin-aux-x3-e40
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from screening.datasets import reference_path
from screening.models.card import trained_on
from screening.models.ensemble import load_model
from screening.stability_fit import fit_stability


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", required=True, help="energy model not trained on val.csv (the shipped recipe's twin)"
    )
    parser.add_argument("--work", default="runs/rediscovery", help="folder for the screens (reused when present)")
    parser.add_argument(
        "--seeds", type=int, default=3, help="random tenths of train.csv hidden to fit the evidence stage"
    )
    parser.add_argument("--save", help="also write the stability model fitted on every row to this folder")
    parser.add_argument("--out", help="write the report (JSON) here as well")
    parser.add_argument(
        "--null-systems",
        action="store_true",
        help="also fit on the grids of systems that hold no stable compound (bench/ranking_null_systems.py)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    hidden, known = reference_path("mp_e_form", "val"), reference_path("mp_e_form", "train")
    if trained_on(load_model(args.model, "cpu").card, hidden):
        raise SystemExit(
            f"{args.model} was trained on {hidden}, the hidden set of this benchmark; use its train-only twin"
        )

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    null_systems = args.null_systems
    fitted = fit_stability(args.model, [str(known)], str(hidden), args.work, args.seeds, log, null_systems)
    report = fitted.report | {
        "model": args.model,
        "evidence_stage": fitted.model.record["evidence_stage"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(report, indent=2, default=float)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    print_table(report)
    if args.save:
        from screening.models.card import record_stability

        fitted.model.record["command"] = "python bench/rediscovery.py " + " ".join(sys.argv[1:])
        log(f"stability model written: {fitted.model.save(args.save)}")
        if (Path(args.save) / "card.json").exists():
            record_stability(args.save, fitted.model.record)
    print(f"reproduce: .venv/bin/python bench/rediscovery.py {' '.join(sys.argv[1:])}")


def print_table(report: dict) -> None:
    for k, part in report["arity"].items():
        first = next(iter(part["rankings"].values()))
        print(
            f"\n{k} elements: {first['candidates']:,} candidates, {first['stable']} stable "
            f"({first['prevalence']:.2%}), {first['systems']} systems"
        )
        print(f"{'ranking':30s} {'top-N P':>8s} {'enrich':>7s} {'R@1%':>6s} {'R@5%':>6s} {'AUC':>6s} {'first':>6s}")
        for name, m in part["rankings"].items():
            print(
                f"{name:30s} {m['precision_top_n']:8.3f} {m['enrichment_top_n']:7.1f} {m['recall_top_1pct']:6.3f} "
                f"{m['recall_top_5pct']:6.3f} {m['auc']:6.3f} {m['first_of_system']:6.3f}"
            )
        for name, r in part["reliability"].items():
            half = r["at_least_half"]
            print(
                f"{name} on the grid: Brier {r['brier']:.4f}, ECE {r['ece']:.4f}; P >= 0.5: {half['n']} candidates, "
                f"mean P {half['predicted']:.3f}, share stable {half['observed']:.3f}"
            )
    for k, m in report.get("null_systems", {}).items():
        mixed = report["with_null_systems"][k]
        print(
            f"\n{k} elements, systems without a stable compound: {m['systems']} systems, {m['candidates']:,} "
            f"candidates; p_stable per system {m['p_stable_per_system']:.3f}, systems with a candidate >= 0.5 "
            f"{m['systems_with_a_candidate_at_half']:.3f}. With them in the grid ({mixed['prevalence']:.2%} stable): "
            f"top-N {mixed['precision_top_n']:.3f}, AUC {mixed['auc']:.3f}, ECE {mixed['ece']:.4f}"
        )


if __name__ == "__main__":
    main()
