"""The hull code on real data: speed and agreement with pymatgen on every compound of
mp_e_form (train + val), and the comparison with the Materials Project's own energies above
hull (mp_e_hull) for the formulas in both.

    .venv/bin/python bench/hull.py                 # ours (~2 s) + MP comparison (~20 s in all)
    .venv/bin/python bench/hull.py --pymatgen      # + pymatgen on every system (~5 min)
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd

from screening.composition import parse_formulas
from screening.datasets import load_reference
from screening.hull import chemical_systems, hull_distances


def pymatgen_all(batch, energy) -> np.ndarray:
    """pymatgen's answer, one PhaseDiagram per chemical system over the compounds of that
    system and all its sub-systems (what the hull of the system depends on)."""
    from itertools import combinations

    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition, Element

    warnings.filterwarnings("ignore")
    entries = [PDEntry(Composition(f), e * Composition(f).num_atoms) for f, e in zip(batch.formula, energy)]
    systems = chemical_systems(batch)
    out = np.full(len(batch), np.nan)
    for system, rows in systems.items():
        members = [
            r for k in range(1, len(system) + 1) for s in combinations(system, k) if s in systems for r in systems[s]
        ]
        refs = [PDEntry(Composition({Element.from_Z(z): 1}), 0.0) for z in system]
        diagram = PhaseDiagram([entries[r] for r in members] + refs)
        for r in rows:
            out[r] = diagram.get_decomp_and_e_above_hull(entries[r], allow_negative=True)[1]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pymatgen", action="store_true")
    args = parser.parse_args()
    frame = pd.concat([load_reference("mp_e_form", "train"), load_reference("mp_e_form", "val")], ignore_index=True)
    batch, _ = parse_formulas(frame["formula"].tolist())
    energy = frame["target"].to_numpy()[batch.index]
    start = time.perf_counter()
    result = hull_distances(batch, energy)
    ours_s = time.perf_counter() - start
    report = {
        "compounds": len(batch),
        "chemical_systems": len(chemical_systems(batch)),
        "ours_seconds": round(ours_s, 2),
        "on_hull": int(result.stable.sum()),
    }

    # Match formulas by reduced composition (mp_e_form writes C1Pt1, mp_e_hull CPt); where
    # several mp_e_form rows share one, the lowest hull distance is the ground state's.
    mp = pd.concat([load_reference("mp_e_hull", "train"), load_reference("mp_e_hull", "val")], ignore_index=True)
    mp_batch, _ = parse_formulas(mp["formula"].tolist())
    ours = pd.Series(result.e_above_hull, index=batch.composition_keys()).groupby(level=0).min()
    theirs = (
        pd.Series(mp["target"].to_numpy()[mp_batch.index], index=mp_batch.composition_keys()).groupby(level=0).min()
    )
    both = ours.index.intersection(theirs.index)
    a, b = ours.loc[both].to_numpy(), theirs.loc[both].to_numpy()
    diff = np.abs(a - b)
    report["vs_materials_project"] = {
        "compositions_in_both": len(both),
        "within_1_meV": round(float((diff <= 1e-3).mean()), 4),
        "within_25_meV": round(float((diff <= 0.025).mean()), 4),
        "mae": round(float(diff.mean()), 4),
        "same_stable_label (e_hull <= 1 meV)": round(float(((a <= 1e-3) == (b <= 1e-3)).mean()), 4),
        "ours_stable_mp_not": int(((a <= 1e-3) & (b > 1e-3)).sum()),
        "mp_stable_ours_not": int(((a > 1e-3) & (b <= 1e-3)).sum()),
    }
    if args.pymatgen:
        start = time.perf_counter()
        reference = pymatgen_all(batch, energy)
        seconds = time.perf_counter() - start
        err = np.abs(result.e_above_hull - reference)
        report["vs_pymatgen"] = {
            "pymatgen_seconds": round(seconds, 1),
            "speedup": round(seconds / ours_s, 1),
            "max_abs_difference": float(err.max()),
            "above_1e-6": int((err > 1e-6).sum()),
        }
    print(json.dumps(report, indent=2))
    print("reproduce: .venv/bin/python bench/hull.py" + (" --pymatgen" if args.pymatgen else ""))


if __name__ == "__main__":
    main()
