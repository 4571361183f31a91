"""Validation error of a pooled ensemble, from the runs' saved validation predictions.

Pooling models (``screening merge``) makes an ensemble whose prediction is the members' mean,
i.e. the parts' ``pred_mean`` weighted by their member counts (tests/test_merge.py checks the
merged model computes exactly its parts' members). So the pooled error can be measured from each
run's ``val_predictions.parquet`` even where the weights stayed on another machine (a lent GPU).
Prints the pooled MAE, RMSE and R², and the paired bootstrap of the difference to ``--against``.

    R=bench/results/h100-recipe-runs
    .venv/bin/python bench/pool.py --runs $R/x3-e400-fit8min $R/x5-e300-fit8min $R/x3-e140-second-run \
        $R/x3-e140-shipped-twin --against $R/x3-e140-shipped-twin

(``bench/results/h100-recipe-runs/NAME`` are compact records of H100 runs of the recipe and
its variants (2026-11-24): card and
validation predictions; ``--record DIR`` writes them for model folders.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from screening.datasets import read_formula_table, sha256_of
from screening.models.metrics import regression_metrics


def load_run(run: str) -> tuple[pd.DataFrame, int, str]:
    """A model folder (``card.json``, ``val_predictions.parquet``), or a compact record of one
    (``RUN.json``: its card; ``RUN.parquet``: its ``pred_mean`` by row of the validation table,
    which is read from where the card says, checked by hash; see bench/results/)."""
    if Path(run).is_dir():
        card = json.loads((Path(run) / "card.json").read_text())
        predictions = pd.read_parquet(Path(run) / "val_predictions.parquet")
    else:
        card = json.loads(Path(run + ".json").read_text())
        compact = pd.read_parquet(run + ".parquet")
        val = card["data"]["val"]
        path = Path(__file__).resolve().parents[1] / val["path"]
        if not path.exists() or sha256_of(path) != val["sha256"]:
            raise SystemExit(f"{run}: its validation table {val['path']} is not here or has changed")
        rows = read_formula_table(path).iloc[compact["row"].to_numpy()]
        predictions = pd.DataFrame(
            {
                "formula": rows["formula"].to_numpy(),
                "target": rows["target"].to_numpy(),
                "pred_mean": compact["pred_mean"].to_numpy(),
            }
        )
    return predictions, int(card["members"]), card.get("data", {}).get("val", {}).get("sha256", "")


def compact_record(run: str, out: str) -> None:
    """Write ``out.json`` and ``out.parquet`` for a model folder: its card and its validation
    predictions by row, without the table's formulas and targets (the data stays where it is)."""
    card = json.loads((Path(run) / "card.json").read_text())
    predictions = pd.read_parquet(Path(run) / "val_predictions.parquet")
    table = read_formula_table(card["data"]["val"]["path"])
    position = {f: i for i, f in enumerate(table["formula"])}
    rows = np.array([position[f] for f in predictions["formula"]])
    if not np.allclose(table["target"].to_numpy()[rows], predictions["target"].to_numpy()):
        raise SystemExit(f"{run}: its predictions do not line up with {card['data']['val']['path']}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"row": rows, "pred_mean": predictions["pred_mean"].to_numpy()}).to_parquet(out + ".parquet")
    Path(out + ".json").write_text(json.dumps(card, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="model folders with val_predictions.parquet")
    parser.add_argument("--against", help="a model folder to compare with (paired bootstrap over the rows)")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument(
        "--record", metavar="DIR", help="write each run's compact record (card, predictions by row) here and stop"
    )
    args = parser.parse_args()
    if args.record:
        for run in args.runs:
            compact_record(run, str(Path(args.record) / Path(run).name))
        return
    runs = [load_run(r) for r in args.runs]
    first = runs[0][0]
    for run, (frame, _, digest) in zip(args.runs, runs):
        if digest != runs[0][2] or not (frame["formula"].to_numpy() == first["formula"].to_numpy()).all():
            raise SystemExit(
                f"{run} was validated on other rows than {args.runs[0]}: pool runs of one validation table"
            )
    y = first["target"].to_numpy()
    members = sum(k for _, k, _ in runs)
    pooled = sum(frame["pred_mean"].to_numpy() * k for frame, k, _ in runs) / members
    report = {
        "runs": args.runs,
        "members": members,
        "pooled": regression_metrics(y, pooled),
        "alone_mae": {
            run: regression_metrics(y, f["pred_mean"].to_numpy())["mae"] for run, (f, _, _) in zip(args.runs, runs)
        },
    }
    if args.against:
        other = load_run(args.against)[0]
        if not (other["formula"].to_numpy() == first["formula"].to_numpy()).all():
            raise SystemExit(f"{args.against} was validated on other rows")
        diff = np.abs(pooled - y) - np.abs(other["pred_mean"].to_numpy() - y)
        rows = np.random.default_rng(0).integers(0, len(y), (args.resamples, len(y)))
        boot = diff[rows].mean(axis=1)
        report["against"] = {
            "model": args.against,
            "difference_mae": float(diff.mean()),
            "interval_95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        }
    print(json.dumps(report, indent=2))
    print(
        "reproduce: .venv/bin/python bench/pool.py --runs "
        + " ".join(args.runs)
        + (f" --against {args.against}" if args.against else "")
    )


if __name__ == "__main__":
    main()
