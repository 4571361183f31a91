import json

import pandas as pd
import pytest

from screening.cli import main
from screening.datasets import load_reference

TINY = "--arch irnet17 --features elemfrac86 --members 2 --epochs 2 --batch-size 64 --quiet".split()


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
    code = main(
        [
            "train",
            "--train",
            str(train_csv),
            "--val",
            str(val_csv),
            *TINY,
            "--out",
            str(model_dir),
        ]
    )
    assert code == 0
    assert "trained irnet17 x2 on elemfrac86" in capsys.readouterr().out
    card = json.loads((model_dir / "card.json").read_text())
    assert card["data"]["val"]["rows_rejected"] == 2 and card["data"]["train"]["sha256"]
    assert card["training"]["epochs_run"] == 2 and "mae" in card["metrics"]["validation"]
    assert card["uncertainty"]["n"] == 120 and card["uncertainty"]["scale"] > 0  # fitted on the validation rows
    assert "Uncertainty: predictive std" in (model_dir / "MODEL_CARD.md").read_text()
    for name in (
        "model.safetensors",
        "learning_curve.png",
        "parity_val.png",
        "history.jsonl",
        "rejected_val.csv",
        "MODEL_CARD.md",
    ):
        assert (model_dir / name).exists(), name

    plot = tmp_path / "parity.png"
    assert main(["evaluate", "--model", str(model_dir), "--data", str(val_csv), "--plot", str(plot), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 120 and metrics["rows_rejected"] == 2 and plot.stat().st_size > 10_000
    assert (
        metrics["mae"] == pytest.approx(card["metrics"]["validation"]["mae"], rel=1e-5)
        and not metrics["trained_on_these_rows"]
    )

    out = tmp_path / "pred.parquet"
    assert main(["predict", "--model", str(model_dir), "--data", str(val_csv), "--out", str(out), "--members"]) == 0
    printed = capsys.readouterr().out
    assert "1 rows could not be featurized" in printed  # Xx2O; NaCl has no target but can be predicted
    pred = pd.read_parquet(out)
    assert list(pred.columns[:3]) == ["formula", "pred_mean", "pred_std"] and len(pred) == 121
    assert (pred["pred_std"] >= 0).all() and "pred_member_1" in pred.columns


def test_model_errors_are_one_line(small_tables, tmp_path, capsys):
    _, val_csv = small_tables
    assert (
        main(
            ["predict", "--model", str(tmp_path / "none"), "--data", str(val_csv), "--out", str(tmp_path / "p.parquet")]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and len(err.splitlines()) == 1
    import torch

    if not torch.cuda.is_available():
        args = ["train", "--train", str(val_csv), "--out", str(tmp_path / "m"), "--device", "cuda", "--quiet"]
        assert main(args) == 2
        assert "no GPU is available; use --device cpu" in capsys.readouterr().err


def test_final_model_on_every_row_takes_its_twins_validation(small_tables, tmp_path, capsys):
    """The shipped-model protocol: validate a recipe on train (twin, --val), then train the same
    recipe on train + val (--no-val, last epoch kept) and carry the twin's validation and
    fitted uncertainty into the final model's card."""
    train_csv, val_csv = small_tables
    clean_val = tmp_path / "val_clean.csv"
    pd.read_csv(val_csv).iloc[:120].to_csv(clean_val, index=False)
    recipe = [
        "--arch",
        "irnet17",
        "--features",
        "elemfrac86",
        "--members",
        "2",
        "--epochs",
        "3",
        "--batch-size",
        "64",
        "--quiet",
    ]
    twin, final = tmp_path / "twin", tmp_path / "final"
    assert main(["train", "--train", str(train_csv), "--val", str(clean_val), "--out", str(twin), *recipe]) == 0
    assert main(["train", "--train", str(train_csv), str(clean_val), "--no-val", "--out", str(final), *recipe]) == 0
    assert "on every row of" in capsys.readouterr().out
    card = json.loads((final / "card.json").read_text())
    assert [t["rows_used"] for t in card["data"]["train"]] == [400, 120] and card["data"]["val"]["rows_used"] == 0
    assert card["metrics"] == {} and "uncertainty" not in card and card["training"]["best_epoch"] == [2, 2]
    history = [json.loads(line) for line in (final / "history.jsonl").read_text().splitlines()]
    assert len(history) == 3 and all(h["val_mae"] is None for h in history)
    assert "No validation" in (final / "MODEL_CARD.md").read_text()

    # the last epoch is what was saved: the model reproduces its own final training MAE's scale
    assert (
        main(["evaluate", "--model", str(final), "--data", str(clean_val), "--plot", str(tmp_path / "p.png"), "--json"])
        == 0
    )
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["n"] == 120 and evaluated["trained_on_these_rows"]
    assert main(["calibrate", "--model", str(final), "--data", str(clean_val)]) == 2  # in-sample errors say nothing
    assert "was trained on" in capsys.readouterr().err

    assert main(["calibrate", "--model", str(final), "--like", str(twin)]) == 0
    card = json.loads((final / "card.json").read_text())
    twin_card = json.loads((twin / "card.json").read_text())
    assert card["recipe_validation"]["metrics"] == twin_card["metrics"]
    assert card["uncertainty"]["scale"] == twin_card["uncertainty"]["scale"] and card["uncertainty"][
        "fitted_on_model"
    ] == str(twin)
    text = (final / "MODEL_CARD.md").read_text()
    assert "validated on a twin" in text and f"{twin_card['metrics']['validation']['mae']:.4f}" in text
    assert card["recipe_validation"]["trained_on"]["device"] == twin_card["training"]["device"] == "cpu"
    assert "The twin ran on cpu (torch" in text  # a twin may run elsewhere (a GPU): the card says where

    # not twins: other settings, or a twin trained on data the final model never saw
    other, unseen = tmp_path / "other", tmp_path / "unseen"
    assert (
        main(
            ["train", "--train", str(train_csv), "--val", str(clean_val), "--out", str(other), *recipe, "--epochs", "2"]
        )
        == 0
    )
    elsewhere = tmp_path / "elsewhere.csv"
    load_reference("mp_e_form", "train").iloc[400:800].to_csv(elsewhere, index=False)
    assert main(["train", "--train", str(elsewhere), "--val", str(clean_val), "--out", str(unseen), *recipe]) == 0
    capsys.readouterr()
    assert main(["calibrate", "--model", str(final), "--like", str(other)]) == 2
    assert "other settings" in (err := capsys.readouterr().err) and "epochs 2 vs 3" in err
    assert main(["calibrate", "--model", str(final), "--like", str(unseen)]) == 2
    assert "trained on data that" in capsys.readouterr().err
    assert main(["calibrate", "--model", str(twin), "--like", str(twin)]) == 2
    assert "validation metrics of its own" in capsys.readouterr().err
    # a fixed schedule only: early stopping and the plateau schedule read the validation MAE
    assert (
        main(
            ["train", "--train", str(train_csv), "--no-val", "--patience", "5", "--out", str(tmp_path / "x"), "--quiet"]
        )
        == 2
    )
    assert "need validation rows" in capsys.readouterr().err

    # a final model whose one-cycle was fitted to a time budget (--max-minutes) is the twin of
    # one trained for the epochs that schedule spanned, and of no other
    card = json.loads((final / "card.json").read_text())
    assert card["training"]["schedule_epochs"] == 3
    card["training"] |= {"epochs": 200, "max_minutes": 120.0, "schedule_epochs": 3}
    (final / "card.json").write_text(json.dumps(card))
    assert main(["calibrate", "--model", str(final), "--like", str(twin)]) == 0
    card["training"]["schedule_epochs"] = 2
    (final / "card.json").write_text(json.dumps(card))
    assert main(["calibrate", "--model", str(final), "--like", str(twin)]) == 2
    assert "epochs 3 vs 2" in capsys.readouterr().err


def test_auxiliary_tables_train_through_their_own_output_unit(small_tables, tmp_path, capsys):
    """--aux: another source's rows (OQMD) join training through a head of their own; rows of a
    validation composition are dropped and counted; the saved model is an ordinary one."""
    train_csv, val_csv = small_tables
    clean_val = tmp_path / "val_clean.csv"
    pd.read_csv(val_csv).iloc[:120].to_csv(clean_val, index=False)
    oqmd = load_reference("oqmd_hf", "train").iloc[:300]
    leaking = pd.DataFrame({"formula": pd.read_csv(clean_val)["formula"].iloc[:7], "target": 0.0})
    aux = tmp_path / "aux.csv"
    pd.concat([oqmd, leaking, pd.DataFrame({"formula": ["Qq2"], "target": [0.1]})]).to_csv(aux, index=False)
    recipe = TINY
    out = tmp_path / "model"
    assert (
        main(
            ["train", "--train", str(train_csv), "--val", str(clean_val), "--aux", str(aux), "--out", str(out), *recipe]
        )
        == 0
    )
    card = json.loads((out / "card.json").read_text())
    (table,) = card["data"]["auxiliary"]
    assert table["rows_dropped_as_validation_compositions"] >= 7 and table["rows_rejected"] == 1
    assert table["rows_used"] + table["rows_dropped_as_validation_compositions"] == 307 and table["sha256"]
    assert card["training"]["auxiliary"] == [str(aux)] and (out / "rejected_auxiliary.csv").exists()
    assert (
        main(["evaluate", "--model", str(out), "--data", str(clean_val), "--plot", str(tmp_path / "p.png"), "--json"])
        == 0
    )
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["mae"] == pytest.approx(card["metrics"]["validation"]["mae"], rel=1e-5)
    assert main(["evaluate", "--model", str(out), "--data", str(aux), "--plot", str(tmp_path / "q.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])[
        "trained_on_these_rows"
    ]  # the network learnt from them
    plain = tmp_path / "plain"  # without the auxiliary table it is another recipe, not a twin
    assert main(["train", "--train", str(train_csv), str(clean_val), "--no-val", "--out", str(plain), *recipe]) == 0
    capsys.readouterr()
    assert main(["calibrate", "--model", str(plain), "--like", str(out)]) == 2
    assert "auxiliary" in capsys.readouterr().err
    moved = tmp_path / "elsewhere" / "oqmd.csv"  # the same table at another path (another machine): same recipe
    moved.parent.mkdir()
    moved.write_bytes(aux.read_bytes())
    final = tmp_path / "final"
    assert (
        main(
            [
                "train",
                "--train",
                str(train_csv),
                str(clean_val),
                "--no-val",
                "--aux",
                str(moved),
                "--out",
                str(final),
                *recipe,
            ]
        )
        == 0
    )
    assert main(["calibrate", "--model", str(final), "--like", str(out)]) == 0
    assert json.loads((final / "card.json").read_text())["recipe_validation"]["model"] == str(out)


def test_help_answers_without_loading_torch_or_pandas():
    import subprocess
    import sys

    code = (
        "import sys, screening.cli; screening.cli.build_parser().format_help(); "
        "print(sorted(m for m in ('torch', 'pandas', 'pyarrow', 'prefect') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"  # `screening --help` in ~0.1 s instead of ~2 s
