"""The shipped default ensemble loads, matches its card, and scores as the card says."""

import json
from pathlib import Path

import numpy as np

from screening.datasets import load_reference
from screening.models.fit import featurize_targets, load_model

DEFAULT = Path(__file__).resolve().parents[1] / "data" / "models" / "default"


def test_default_model_scores_as_its_card_says(data_dir):
    card = json.loads((DEFAULT / "card.json").read_text())
    model = load_model(str(DEFAULT), "cpu")
    assert model.members == card["members"] == 5 and model.featurizer == "magpie145+elemfrac86+mat2vec200"
    val = load_reference("mp_e_form", "val").iloc[:1500]
    x, y, _, rejected = featurize_targets(val, model.featurizer, "val.csv")
    assert not rejected
    mean, std, members = model.predict(x)
    mae = float(np.abs(mean - y).mean())
    assert abs(mae - card["metrics"]["validation_fp16_weights"]["mae"]) < 0.02  # a 1,500-row subset
    assert (std > 0).all() and members.shape == (5, len(y))
    assert "Li" in card["training_element_counts"] and (DEFAULT / "MODEL_CARD.md").exists()
