"""How p_stable behaves in systems that hold no stable compound: the other half of the screening
situation. The rediscovery benchmark (bench/rediscovery.py) fits and measures the ranking on the
systems of hidden stable compounds, so each of its grids hides at least one; a real screen also
enumerates systems that hide none (most all-metal quaternaries, for instance).

Systems here: every 3- and 4-element system that holds compounds of val.csv, none of them stable
on the hull of train + val, and no compound of train.csv (uncharted, as a screen sees it). Their
grids (<= 10 atoms) are screened against everything else known (train.csv and the val.csv
compounds of other systems) with an energy model that never saw val.csv (the shipped recipe's
twin) and the shipped stability model. By the data, each of these systems holds no stable
compound, so the sum of p_stable over a system is the stable compounds the ranking would promise
there in vain (the data lacks MP's held-out compounds, so a few may exist). The stacker was fitted
on the systems of val's stable compounds only; none of these systems is among them.

    .venv/bin/python bench/uncharted.py --model runs/twin-aux-x3-e140
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from screening.composition import CompositionBatch
from screening.datasets import formula_targets, load_reference, reference_path
from screening.elements import chemsys_name
from screening.hull import hull_distances
from screening.models.card import trained_on
from screening.models.ensemble import load_model
from screening.request import ScreenRequest
from screening.screen import screen

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="an energy model not trained on val.csv, with a stability model")
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench-uncharted"))
    args = parser.parse_args()
    if trained_on(load_model(args.model, "cpu").card, reference_path("mp_e_form", "val")):
        raise SystemExit(f"{args.model} was trained on val.csv; use the recipe's train-only twin")
    started = time.perf_counter()
    train, val = load_reference("mp_e_form", "train"), load_reference("mp_e_form", "val")
    kb, ke, _ = formula_targets(train, "train")
    hb, he, _ = formula_targets(val, "val")
    stable = hull_distances(CompositionBatch.concat(kb, hb), np.concatenate([ke, he])).stable[len(kb) :]
    known_systems = {chemsys_name(z) for z in kb.z.tolist()}
    hidden = pd.DataFrame({"system": [chemsys_name(z) for z in hb.z.tolist()], "n": hb.n_elements, "stable": stable})
    by_system = hidden.groupby("system").agg(n=("n", "first"), stable=("stable", "any"), compounds=("n", "size"))
    chosen = by_system[by_system["n"].isin([3, 4]) & ~by_system["stable"] & ~by_system.index.isin(known_systems)]

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    others = val[~pd.Series([chemsys_name(z) for z in hb.z.tolist()]).isin(chosen.index).to_numpy()]
    reference = work / "known.csv"
    pd.concat([train, others]).to_csv(reference, index=False)
    systems = [s.split("-") for s in chosen.index]
    request = ScreenRequest(
        model=args.model, out=str(work / "screen"), systems=systems, reference=[str(reference)], chunk_size=50_000
    )
    screen(request, progress=False, workers=0)
    ranked = pd.read_parquet(work / "screen" / "ranked.parquet", columns=["chemsys", "n_elements", "p_stable"])
    per_system = ranked.groupby("chemsys").agg(
        n=("n_elements", "first"), total=("p_stable", "sum"), best=("p_stable", "max")
    )
    stability = json.loads((Path(args.model) / "card.json").read_text())["stability"]["benchmark"]
    report = {"model": args.model, "seconds": round(time.perf_counter() - started, 1), "arity": {}}
    for k in (3, 4):
        part, rows = per_system[per_system["n"] == k], ranked[ranked["n_elements"] == k]
        grids = stability[str(k)]
        report["arity"][str(k)] = {
            "systems": int(len(part)),
            "candidates": int(len(rows)),
            "expected_stable_per_system": round(float(part["total"].mean()), 3),
            "systems_with_a_candidate_at_0.5": round(float((part["best"] >= 0.5).mean()), 3),
            "mean_p_stable": round(float(rows["p_stable"].mean()), 5),
            "candidates_at_0.5": int((rows["p_stable"] >= 0.5).sum()),
            "benchmark_grids_stable_per_system": round(grids["stable"] / grids["systems"], 3),
        }
    report["reproduce"] = f".venv/bin/python bench/uncharted.py --model {args.model}"
    print(json.dumps(report, indent=2))
    (ROOT / "bench" / "results" / "uncharted.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
