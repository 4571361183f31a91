"""Unseen compositions from another database: models against OQMD formation enthalpies.

mp_e_form's held-out test split is not in ../shared/data, and a final model trained on train +
val has no held-out rows of its own, so this is how such a model is compared with its train-only
twin on compositions neither saw: the OQMD compositions (oqmd_hf/train.csv) absent from
mp_e_form's train.csv and val.csv. OQMD is a different DFT database (other elemental reference
energies and +U choices), so every model carries the same systematic MP-vs-OQMD disagreement;
what the comparison shows is the difference between models, on the same rows. The MP-vs-OQMD
disagreement itself is measured on the compositions both databases share.

    .venv/bin/python bench/external.py --models data/models/default runs/default-m2v-irnet17x5
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

from screening.composition import parse_formulas
from screening.datasets import load_reference, reference_path
from screening.models.card import trained_on
from screening.models.ensemble import load_model
from screening.models.fit import featurize_targets


def composition_keys(formulas) -> list[str]:
    batch, rejected = parse_formulas(list(formulas))
    if rejected:
        raise ValueError(f"unparseable reference formulas: {rejected[:3]}")
    return batch.composition_keys()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["data/models/default"])
    args = parser.parse_args()
    mp = pd.concat([load_reference("mp_e_form", "train"), load_reference("mp_e_form", "val")], ignore_index=True)
    oqmd = load_reference("oqmd_hf", "train")
    mp_energy = dict(zip(composition_keys(mp["formula"]), mp["target"]))
    keys = composition_keys(oqmd["formula"])
    unseen = np.array([k not in mp_energy for k in keys])
    shared = ~unseen
    overlap = np.array([mp_energy[k] for k, s in zip(keys, shared) if s]) - oqmd["target"].to_numpy()[shared]
    report: dict = {
        "oqmd_compositions": len(oqmd),
        "unseen_by_mp_e_form_train_val": int(unseen.sum()),
        "mp_minus_oqmd_on_shared_compositions": {
            "n": int(shared.sum()),
            "mae": float(np.abs(overlap).mean()),
            "median": float(np.median(overlap)),
        },
        "models": {},
    }
    rows = oqmd[unseen].reset_index(drop=True)
    predictions = {}
    for path in args.models:
        model = load_model(path, "cpu")
        if trained_on(model.card, reference_path("oqmd_hf", "train")):
            raise SystemExit(f"{path} was trained on oqmd_hf/train.csv (--aux): these rows are not unseen by it")
        start = time.perf_counter()
        x, y, _, rejected = featurize_targets(rows, model.featurizer, "oqmd_hf/train.csv")
        mean, _, members = model.predict(x)
        error = mean - y
        predictions[path] = (mean, y)
        report["models"][path] = {
            "n": len(y),
            "rejected": len(rejected),
            "mae": float(np.abs(error).mean()),
            "median_abs_error": float(np.median(np.abs(error))),
            "mean_error": float(error.mean()),
            "members_mae": [float(np.abs(m - y).mean()) for m in members],
            # what a smaller ensemble of the same recipe would score: the mean of its first k members
            "first_k_members_mae": [
                float(np.abs(members[:k].mean(axis=0) - y).mean()) for k in range(1, len(members) + 1)
            ],
            "seconds": round(time.perf_counter() - start, 1),
        }
    if len(predictions) == 2 and np.array_equal(*(y for _, y in predictions.values())):
        (pa, y), (pb, _) = predictions.values()
        ea, eb = np.abs(pa - y), np.abs(pb - y)
        rng = np.random.default_rng(0)
        boot = [float((ea[i] - eb[i]).mean()) for i in (rng.integers(0, len(y), len(y)) for _ in range(1000))]
        report["difference_mae_first_minus_second"] = {
            "mean": float((ea - eb).mean()),
            "bootstrap_95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        }
    print(json.dumps(report, indent=2))
    print("reproduce: .venv/bin/python bench/external.py --models " + " ".join(args.models))


if __name__ == "__main__":
    main()
