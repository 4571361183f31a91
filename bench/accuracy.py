"""Validation accuracy of every architecture, the random-forest baseline and an ensemble.

    .venv/bin/python bench/accuracy.py --dataset mp_e_form --epochs 120 --members 1
    .venv/bin/python bench/accuracy.py --dataset oqmd_hf --archs irnet17 --members 5
    .venv/bin/python bench/accuracy.py --quick          # 3 epochs on 5,000 rows: a smoke test

mp_e_form: train.csv -> val.csv. oqmd_hf: its train.csv split 90/10 (seed 0). Published on a
held-out fold of mp_e_form: CrabNet 0.075, Roost 0.079, random forest 0.131 eV/atom MAE.
Each network is trained by the project's own `fit` (what `screening train` runs), into
runs/bench/<dataset>/<arch>; results are appended to runs/bench/accuracy.jsonl.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from screening.datasets import load_reference, reference_path
from screening.featurizers import get_featurizer
from screening.models.config import TrainConfig
from screening.models.fit import fit, prepare_data
from screening.models.metrics import regression_metrics

ALL = ["elemnet", "plain17", "srnet17", "irnet17", "irnet48", "brnet", "ibrnet"]
FEATURES = {"elemnet": "elemfrac86", "brnet": "elemfrac86", "ibrnet": "elemfrac86"}


def splits(dataset: str, tmp: Path, limit: int | None) -> tuple[str, str]:
    if dataset == "mp_e_form":
        train, val = load_reference("mp_e_form", "train"), load_reference("mp_e_form", "val")
    else:
        frame = load_reference(dataset, "train")
        order = np.random.default_rng(0).permutation(len(frame))
        cut = len(frame) // 10
        val, train = frame.iloc[order[:cut]], frame.iloc[order[cut:]]
    if limit:
        train, val = train.iloc[:limit], val.iloc[: max(200, limit // 10)]
    paths = tmp / "train.csv", tmp / "val.csv"
    train.to_csv(paths[0], index=False)
    val.to_csv(paths[1], index=False)
    return str(paths[0]), str(paths[1])


def random_forest(train_csv: str, val_csv: str) -> dict:
    import pandas as pd
    from sklearn.ensemble import RandomForestRegressor

    featurizer = get_featurizer("magpie145")
    tables = [featurizer.featurize_frame(pd.read_csv(p, keep_default_na=False)) for p in (train_csv, val_csv)]
    targets = [
        pd.read_csv(p, keep_default_na=False)["target"].to_numpy()[t.index]
        for p, t in zip((train_csv, val_csv), tables)
    ]
    start = time.perf_counter()
    forest = RandomForestRegressor(n_estimators=100, n_jobs=-1, random_state=0).fit(tables[0].values, targets[0])
    return regression_metrics(targets[1], forest.predict(tables[1].values)) | {
        "seconds": round(time.perf_counter() - start, 1)
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="mp_e_form", choices=["mp_e_form", "oqmd_hf"])
    parser.add_argument("--archs", default=",".join(ALL + ["rf"]))
    parser.add_argument("--features", default=None, help="override the featurizer of every network")
    parser.add_argument("--members", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training forward")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    reference_path(args.dataset)  # fails early, with advice, if the data is missing
    results = []
    out_root = Path("runs/bench") / args.dataset
    with tempfile.TemporaryDirectory() as tmp:
        train_csv, val_csv = splits(args.dataset, Path(tmp), 5000 if args.quick else None)
        for arch in args.archs.split(","):
            if arch == "rf":
                metrics = random_forest(train_csv, val_csv)
                results.append({"model": "random forest (magpie145, 100 trees)"} | metrics)
            else:
                features = args.features or FEATURES.get(arch, "magpie145+elemfrac86")
                config = TrainConfig.for_architecture(
                    arch,
                    members=args.members,
                    epochs=3 if args.quick else args.epochs,
                    batch_size=args.batch_size,
                    lr=args.lr,
                    bf16=args.bf16,
                    compile=args.compile,
                )
                start = time.perf_counter()
                out = str(out_root / (f"{arch}-x{args.members}" + (f"-{features}" if args.features else "")))
                data = prepare_data(train_csv, val_csv, features, config.seed, out)
                _, metrics = fit(data, config, out, device=args.device, progress=False)
                results.append(
                    {
                        "model": f"{arch} x{args.members} ({features})",
                        "epochs": config.epochs,
                        "seconds": round(time.perf_counter() - start, 1),
                    }
                    | metrics
                )
            print(json.dumps(results[-1]), flush=True)
    out_root.mkdir(parents=True, exist_ok=True)
    with open(out_root.parent / "accuracy.jsonl", "a") as f:
        for r in results:
            f.write(json.dumps(r | {"dataset": args.dataset}) + "\n")
    print("\n| model | val MAE | RMSE | R2 |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['mae']:.4f} | {r['rmse']:.4f} | {r['r2']:.4f} |")
    flags = [
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
        for k, v in vars(args).items()
        if v not in (None, False)
    ]
    print("reproduce: .venv/bin/python bench/accuracy.py " + " ".join(flags))


if __name__ == "__main__":
    main()
