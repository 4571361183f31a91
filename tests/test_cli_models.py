import json

import pandas as pd
import pytest

from screening.cli import main
from screening.datasets import load_reference


@pytest.fixture(scope="module")
def small_tables(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("tables")
    train = load_reference("mp_e_form", "train").iloc[:400]
    val = load_reference("mp_e_form", "val").iloc[:120]
    val = pd.concat([val, pd.DataFrame({"formula": ["Xx2O", "NaCl"], "target": [1.0, float("nan")]})])
    train.to_csv(root / "train.csv", index=False)
    val.to_csv(root / "val.csv", index=False)
    return root / "train.csv", root / "val.csv"


def test_train_evaluate_predict(small_tables, tmp_path, capsys):
    train_csv, val_csv = small_tables
    model_dir = tmp_path / "model"
    code = main(["train", "--train", str(train_csv), "--val", str(val_csv), "--arch", "irnet17",
                 "--features", "elemfrac86", "--members", "2", "--epochs", "2", "--batch-size", "64",
                 "--out", str(model_dir), "--quiet"])  # fmt: skip
    assert code == 0
    assert "trained irnet17 x2 on elemfrac86" in capsys.readouterr().out
    card = json.loads((model_dir / "card.json").read_text())
    assert card["data"]["val"]["rows_rejected"] == 2 and card["data"]["train"]["sha256"]
    assert card["training"]["epochs_run"] == 2 and "mae" in card["metrics"]["validation"]
    assert card["uncertainty"]["n"] == 120 and card["uncertainty"]["scale"] > 0  # fitted on the validation rows
    assert "Uncertainty: predictive std" in (model_dir / "MODEL_CARD.md").read_text()
    for name in ("model.safetensors", "learning_curve.png", "parity_val.png", "history.jsonl", "rejected_val.csv", "MODEL_CARD.md"):
        assert (model_dir / name).exists(), name

    plot = tmp_path / "parity.png"
    assert main(["evaluate", "--model", str(model_dir), "--data", str(val_csv), "--plot", str(plot), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 120 and metrics["rows_rejected"] == 2 and plot.stat().st_size > 10_000
    assert metrics["mae"] == pytest.approx(card["metrics"]["validation"]["mae"], rel=1e-5)

    out = tmp_path / "pred.parquet"
    assert main(["predict", "--model", str(model_dir), "--data", str(val_csv), "--out", str(out), "--members"]) == 0
    printed = capsys.readouterr().out
    assert "1 rows could not be featurized" in printed  # Xx2O; NaCl has no target but can be predicted
    pred = pd.read_parquet(out)
    assert list(pred.columns[:3]) == ["formula", "pred_mean", "pred_std"] and len(pred) == 121
    assert (pred["pred_std"] >= 0).all() and "pred_member_1" in pred.columns


def test_model_errors_are_one_line(small_tables, tmp_path, capsys):
    _, val_csv = small_tables
    assert main(["predict", "--model", str(tmp_path / "none"), "--data", str(val_csv), "--out", str(tmp_path / "p.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and len(err.splitlines()) == 1
    import torch

    if not torch.cuda.is_available():
        args = ["train", "--train", str(val_csv), "--out", str(tmp_path / "m"), "--device", "cuda", "--quiet"]
        assert main(args) == 2
        assert "no GPU is available; use --device cpu" in capsys.readouterr().err
