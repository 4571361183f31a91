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

from screening.cross_fit import nested_p_stable
from screening.datasets import reference_path
from screening.models.card import record_stability
from screening.rank_metrics import reliability, screening_metrics
from screening.stability import stacker_inputs, system_stats
from screening.stability_fit import attach_system, fit_stability

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the energy model not trained on val.csv (the twin)")
    parser.add_argument("--plain", required=True, help="work folder of the rediscovery screens without null systems")
    parser.add_argument("--with-null", required=True, help="work folder of the screens with null systems")
    parser.add_argument("--save", help="model folder: write the stability model with its system-level classifier")
    args = parser.parse_args()
    known, hidden = [str(reference_path("mp_e_form", "train"))], str(reference_path("mp_e_form", "val"))
    quiet = lambda message: None  # noqa: E731
    plain = fit_stability(args.model, known, hidden, args.plain, log=quiet, null_systems=False)
    mixed = fit_stability(args.model, known, hidden, args.with_null, log=quiet, null_systems=True)
    frame = mixed.frame
    # the stacker fitted without null systems, cross-fitted: every system scored by a fold model that did not see
    # it, the null systems too (never learnt from), so that their p_stable is made as the others' is
    null = ~frame.groupby("chemsys")["stable"].transform("any").to_numpy()
    inputs = stacker_inputs(frame, system_stats(frame))
    p_plain = nested_p_stable(inputs, frame["stable"].to_numpy(), frame["chemsys"].to_numpy(), fit=~null)
    system = attach_system(plain.model, frame.assign(p_stable=p_plain), quiet)  # the shipped stacker beside it
    p_system = system.cross_fitted.reindex(frame["chemsys"]).to_numpy()
    report = {
        "without_null_systems": figures(frame, p_plain),
        "with_null_systems": figures(frame, frame["p_stable"].to_numpy()),
        "system_times_within_system": figures(frame, p_plain * p_system),
        "reproduce": ".venv/bin/python bench/ranking_null_systems.py "
        f"--model {args.model} --plain {args.plain} --with-null {args.with_null}",
    }
    report["system_level"] = system.figures
    if args.save:  # the shipped stacker (refitted, identical) with the system-level classifier beside it
        plain.model.record["system"] |= {"with_p_stable": report["system_times_within_system"]}
        plain.model.record["command"] = f"{report['reproduce']} --save {args.save}"
        plain.model.save(args.save)
        record_stability(args.save, plain.model.record)
    print(json.dumps(report, indent=2))
    (ROOT / "bench" / "results" / "ranking-null-systems.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
