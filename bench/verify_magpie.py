"""Exactness of our featurizers against matminer (the oracle) on real formulas.

    .venv/bin/python bench/verify_magpie.py              # 12,000 random formulas (~20 s)
    .venv/bin/python bench/verify_magpie.py --n 178267   # every shared formula (~4 min)

Tolerance from the issue: each value within 1e-9 absolute or 1e-6 relative.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from screening.datasets import REFERENCE_SPLITS, load_reference
from screening.featurizers import ElementFraction86, Magpie145

warnings.filterwarnings("ignore")
SPLITS = REFERENCE_SPLITS


def compare(ours: np.ndarray, oracle: np.ndarray) -> dict:
    err = np.abs(ours - oracle)
    rel = err / np.maximum(np.abs(oracle), 1e-300)
    outside = (err > 1e-9) & (rel > 1e-6)
    return {
        "values": int(err.size),
        "max_abs_error": float(err.max()),
        "max_rel_error_where_abs_above_1e-9": float(rel[err > 1e-9].max(initial=0.0)),
        "values_outside_tolerance": int(outside.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=12_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from matminer.featurizers.composition import ElementFraction
    from pymatgen.core import Composition

    formulas = [f for name, split in SPLITS for f in load_reference(name, split)["formula"]]
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(formulas), min(args.n, len(formulas)), replace=False)
    sample = [formulas[i] for i in np.sort(picks)]

    oracle = Magpie145.matminer_equivalent()
    start = time.perf_counter()
    expected = np.array([oracle.featurize(Composition(f)) for f in sample], float)
    oracle_seconds = time.perf_counter() - start
    ours = Magpie145()
    assert ours.feature_labels() == oracle.feature_labels()
    table = ours.featurize_formulas(sample)
    assert not table.rejections
    report = {
        "formulas": len(sample),
        "matminer_seconds": round(oracle_seconds, 1),
        "magpie145": compare(table.values, expected),
    }

    fractions = ElementFraction86()
    table = fractions.featurize_formulas(sample)
    reference = ElementFraction()
    columns = [reference.feature_labels().index(s) for s in fractions.feature_labels()]
    expected = np.array([reference.featurize(Composition(f)) for f in table.formula])[:, columns]
    report["elemfrac86"] = compare(table.values, expected) | {"rejected_outside_86": len(table.rejections)}

    print(json.dumps(report, indent=2))
    print(f"reproduce: .venv/bin/python bench/verify_magpie.py --n {args.n} --seed {args.seed}")
    bad = report["magpie145"]["values_outside_tolerance"] + report["elemfrac86"]["values_outside_tolerance"]
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
