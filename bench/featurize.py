"""Featurization speed: matminer against ours on the same real formulas, one core; then the
chunked Dask pipeline on 1,000,000 compositions, with peak memory of the whole process tree.

    .venv/bin/python bench/featurize.py            # full run (about 3 minutes on 2 cores)
    .venv/bin/python bench/featurize.py --quick    # smaller sizes, for a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _memory import PeakMemory  # bench/ is on sys.path when a script runs

from screening.datasets import REFERENCE_SPLITS, load_reference
from screening.featurize_dataset import featurize_file
from screening.featurizers import ElementFraction86, Magpie145

warnings.filterwarnings("ignore")
SPLITS = REFERENCE_SPLITS


def rate(fn, n: int, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--matminer-n", type=int, default=4000)
    parser.add_argument("--pipeline-n", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.quick:
        args.matminer_n, args.pipeline_n = 500, 100_000

    from matminer.featurizers.composition import ElementFraction, ElementProperty
    from pymatgen.core import Composition

    formulas = [f for name, split in SPLITS for f in load_reference(name, split)["formula"]]
    rng = np.random.default_rng(0)
    sample = [formulas[i] for i in rng.choice(len(formulas), args.matminer_n, replace=False)]
    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "formulas": len(formulas),
    }

    # --- one core, from formula strings (parsing included on both sides) -----------------------
    mm145 = Magpie145.matminer_equivalent()
    mm_ep = ElementProperty.from_preset("magpie")
    mm_ef = ElementFraction()
    results["matminer_magpie145_per_s"] = rate(lambda: [mm145.featurize(Composition(f)) for f in sample], len(sample))
    results["matminer_elementproperty_magpie_per_s"] = rate(
        lambda: [mm_ep.featurize(Composition(f)) for f in sample], len(sample)
    )
    results["matminer_elementfraction_per_s"] = rate(
        lambda: [mm_ef.featurize(Composition(f)) for f in sample], len(sample)
    )
    ours145, ours86 = Magpie145(), ElementFraction86()
    results["ours_magpie145_per_s"] = rate(lambda: ours145.featurize_formulas(formulas), len(formulas), repeat=3)
    results["ours_elemfrac86_per_s"] = rate(lambda: ours86.featurize_formulas(formulas), len(formulas), repeat=3)
    results["speedup_magpie145_vs_matminer"] = results["ours_magpie145_per_s"] / results["matminer_magpie145_per_s"]
    results["speedup_magpie145_vs_matminer_elementproperty_alone"] = (
        results["ours_magpie145_per_s"] / results["matminer_elementproperty_magpie_per_s"]
    )

    # --- the chunked pipeline to Parquet ----------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        big = pd.DataFrame({"formula": [formulas[i] for i in rng.integers(0, len(formulas), args.pipeline_n)]})
        source = Path(tmp) / "formulas.parquet"
        big.to_parquet(source, index=False)
        del big
        pipeline = {}
        for workers in (0, 1, 2):
            out = Path(tmp) / f"out-{workers}"
            with PeakMemory() as memory:
                start = time.perf_counter()
                summary = featurize_file(str(source), str(out), "magpie145", chunk_size=50_000, workers=workers)
                seconds = time.perf_counter() - start
            size = sum(p.stat().st_size for p in (out / "features").iterdir())
            pipeline[f"workers={workers}"] = {
                "rows": summary.rows_in,
                "seconds": round(seconds, 2),
                "rows_per_s": round(summary.rows_in / seconds),
                "peak_rss_mb": round(memory.peak / 2**20),
                "parquet_mb": round(size / 2**20),
            }
        results["pipeline_magpie145"] = pipeline

    print(json.dumps(results, indent=2, default=lambda x: round(x, 1)))
    print("reproduce: .venv/bin/python bench/featurize.py" + (" --quick" if args.quick else ""))


if __name__ == "__main__":
    main()
