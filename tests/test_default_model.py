"""The shipped default ensemble loads, matches its card, and was made as its card says: the
validated recipe (a train-only twin) retrained on mp_e_form train + val, with OQMD's rows as
auxiliary data through an output unit of their own."""

import json
from pathlib import Path

import numpy as np
from conftest import classifier_split_inside_rounding

from screening.datasets import load_reference, manifest
from screening.models.ensemble import load_model
from screening.models.fit import featurize_targets

DEFAULT = Path(__file__).resolve().parents[1] / "data" / "models" / "default"


def test_default_model_is_the_validated_recipe_on_train_and_val(data_dir):
    card = json.loads((DEFAULT / "card.json").read_text())
    model = load_model(str(DEFAULT), "cpu")
    assert model.members == card["members"] == 3 and model.featurizer == "magpie145+elemfrac86+mat2vec200"
    files = manifest()["files"]
    assert [t["sha256"] for t in card["data"]["train"]] == [
        files["mp_e_form/train.csv"]["sha256"],
        files["mp_e_form/val.csv"]["sha256"],
    ]
    assert [t["rows_used"] for t in card["data"]["train"]] == [72_082, 6_768] and card["metrics"] == {}
    oqmd = files["oqmd_hf/train.csv"]["sha256"]
    assert [(t["sha256"], t["rows_used"]) for t in card["data"]["auxiliary"]] == [(oqmd, 51_255)]

    twin = card["recipe_validation"]
    assert twin["data"]["train"]["sha256"] == files["mp_e_form/train.csv"]["sha256"]
    assert twin["data"]["val"]["sha256"] == files["mp_e_form/val.csv"]["sha256"]
    # the twin's auxiliary rows: OQMD's, less those whose composition is in val.csv (no leak)
    assert [t["sha256"] for t in twin["data"]["auxiliary"]] == [oqmd] and twin["data"]["auxiliary"][0][
        "rows_used"
    ] < 51_255
    recipe_mae = twin["metrics"]["validation_fp16_weights"]["mae"]
    assert recipe_mae < 0.0715 and card["uncertainty"]["fitted_on_model"] == twin["model"]

    # val.csv rows are training rows now: the model fits them about as well as its last epoch fit
    # the training set (and far better than the twin, which never saw them, predicted them)
    val = load_reference("mp_e_form", "val").iloc[:1500]
    x, y, _, rejected = featurize_targets(val, model.featurizer, "val.csv")
    assert not rejected
    mean, std, members = model.predict(x)
    mae = float(np.abs(mean - y).mean())
    last = json.loads((DEFAULT / "history.jsonl").read_text().splitlines()[-1])
    assert abs(mae - np.mean(last["train_mae"])) < 0.015 and mae < 0.6 * recipe_mae
    assert (std > 0).all() and members.shape == (3, len(y))
    assert "Li" in card["training_element_counts"] and "validated on a twin" in (DEFAULT / "MODEL_CARD.md").read_text()
    assert (
        twin["trained_on"]["device"] and card["training"]["device"]
    )  # where each ran (the recipe's CPU time: docs/benchmarks.md)


def test_default_model_ranks_by_a_verified_stability_model():
    """The shipped ranking part: loads (hash checked), and its card says how it was fitted and
    what it scores in the screening situation (cross-fitted, ternary and quaternary grids)."""
    from screening.stability import StabilityModel

    card = json.loads((DEFAULT / "card.json").read_text())
    model = StabilityModel.load(DEFAULT)
    stability = card["stability"]
    assert stability["sha256"] == model.record["sha256"]
    assert stability["fitted_on"]["hidden"].endswith("mp_e_form/val.csv") and stability["fitted_on"]["known"][
        0
    ].endswith("mp_e_form/train.csv")
    for k in ("3", "4"):
        m = stability["benchmark"][k]
        assert m["enrichment_top_n"] > 30 and m["auc"] > 0.95 and m["ece"] < 0.01
    assert "## Ranking: p_stable" in (DEFAULT / "MODEL_CARD.md").read_text()


def test_no_classifier_of_the_shipped_stability_model_splits_inside_rounding_noise():
    """Hull distances at 0 +- 1e-15 and phase shares at +-1 ulp reach the classifiers as one value
    (screening.stability.on_hull_as_zero, the evidence's rounded share): none of the shipped
    classifiers holds a split between such twins. The model shipped before held 10 in the stacker
    and some in the evidence stage."""
    from screening.evidence import FEATURES
    from screening.stability import STACK_FEATURES, SYSTEM_FEATURES, StabilityModel
    from screening.tree_predict import rounding_splits

    model = StabilityModel.load(DEFAULT)
    for classifier, names in ((model.evidence, FEATURES), (model.stacker, STACK_FEATURES)):
        assert rounding_splits(classifier, names) == []
    assert model.system is not None and rounding_splits(model.system, SYSTEM_FEATURES) == []
    assert model.rounding_splits() == {"evidence": [], "stacker": [], "system": []}  # what a save records


def test_splits_inside_rounding_noise_are_found():
    from screening.tree_predict import rounding_splits

    fitted = classifier_split_inside_rounding()
    assert rounding_splits(fitted, ["share", "distance", "plain"]) == ["share", "distance"]
    assert rounding_splits(object(), ["x"]) == []


def test_predict_names_the_predictions_that_are_extrapolations(tmp_path, capsys):
    import pandas as pd

    from screening.cli import main

    (tmp_path / "in.csv").write_text("formula\nFe2O3\nFe0.0000001O\nH1000000O\n")
    out = tmp_path / "p.parquet"
    assert main(["predict", "--model", str(DEFAULT), "--data", str(tmp_path / "in.csv"), "--out", str(out)]) == 0
    assert "2 predictions are extrapolations" in capsys.readouterr().out
    assert pd.read_parquet(out)["dilute"].tolist() == [False, True, True]
