"""screening merge: members of separately trained models pooled into one, unchanged."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import reference_slices

from screening.cli import main
from screening.datasets import load_reference
from screening.models.ensemble import load_model
from screening.models.fit import featurize_targets
from screening.models.merge import merge_models

RECIPE = ["--features", "elemfrac86", "--epochs", "2", "--batch-size", "64", "--quiet"]


@pytest.fixture(scope="module")
def parts(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("merge")
    train, val = reference_slices(root, 400, 150)
    made = {}
    for name, extra in {
        "a": ["--members", "2", "--seed", "0"],
        "b": ["--members", "1", "--seed", "7", "--weight-decay", "0.05"],  # the default is 0.1
        "brnet": ["--members", "1", "--arch", "brnet"],
    }.items():
        out = root / name
        assert main(["train", "--train", str(train), "--val", str(val), "--out", str(out), *RECIPE, *extra]) == 0
        made[name] = out
    fewer = root / "fewer.csv"  # other training rows: another standardization
    load_reference("mp_e_form", "train").iloc[:300].to_csv(fewer, index=False)
    made["other_rows"] = root / "other_rows"
    assert (
        main(
            [
                "train",
                "--train",
                str(fewer),
                "--val",
                str(val),
                "--out",
                str(made["other_rows"]),
                "--members",
                "1",
                *RECIPE,
            ]
        )
        == 0
    )
    return made, val


def test_pooled_members_compute_what_they_did_alone(parts, tmp_path, capsys):
    made, val = parts
    out = tmp_path / "pooled"
    assert main(["merge", "--models", str(made["a"]), str(made["b"]), "--out", str(out)]) == 0
    assert "pooled irnet17 x3 (2 + 1)" in capsys.readouterr().out
    pooled, a, b = (load_model(str(d), "cpu") for d in (out, made["a"], made["b"]))
    x, y, _, _ = featurize_targets(pd.read_csv(val), "elemfrac86", str(val))
    together = pooled.predict_members(x)
    # float32 reductions over batches of other shapes differ by ~1e-4 between CPUs (AMX, AVX-512, AVX2)
    np.testing.assert_allclose(
        together, np.concatenate([a.predict_members(x), b.predict_members(x)]), rtol=1e-4, atol=5e-4
    )
    card = json.loads((out / "card.json").read_text())
    assert card["members"] == 3 and [p["members"] for p in card["merged_from"]] == [2, 1]
    assert card["metrics"]["validation"]["mae"] == pytest.approx(np.abs(together.mean(0) - y).mean(), rel=1e-5)
    assert "weight_decay" not in card["training"] and card["training"]["epochs"] == 2  # only what the parts share
    assert "uncertainty" not in card and str(made["b"]) in (out / "MODEL_CARD.md").read_text()
    assert (
        main(["calibrate", "--model", str(out), "--data", str(val)]) == 0
    )  # not trained on val: it may be calibrated there
    assert main(["merge", "--models", str(made["a"]), str(made["b"]), "--out", str(out)]) == 2  # never over a model
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    "other, why", [("brnet", "architecture"), ("other_rows", "other train tables"), ("a", "same weights")]
)
def test_models_that_cannot_be_pooled_are_refused_by_name(parts, tmp_path, other, why):
    made, _ = parts
    with pytest.raises(ValueError, match=why) as err:
        merge_models([str(made["a"]), str(made[other])], str(tmp_path / "x"))
    assert str(made[other]) in str(err.value) and not (tmp_path / "x").exists()
