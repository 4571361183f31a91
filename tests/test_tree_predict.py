"""The stability model's trees walked over feature bins give the library's probabilities exactly."""

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from screening.composition import parse_formulas
from screening.enumerate import space
from screening.evidence import KnownCompounds
from screening.stability import StabilityModel
from screening.tree_predict import _walks_bins, positive_probability

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_the_shipped_classifiers_agree_bit_for_bit_on_real_candidates(data_dir):
    train = pd.read_csv(data_dir / "mp_e_form" / "train.csv")
    known, _ = parse_formulas(train["formula"].tolist())
    chunk = next(space(["Li", "Mn", "Fe", "O", "Si"], max_arity=4).chunks(20_000))
    features = KnownCompounds(known, train["target"].to_numpy()[known.index]).features(chunk.batch)
    model = StabilityModel.load(ROOT / "data" / "models" / "default")
    assert _walks_bins(model.evidence) and _walks_bins(model.stacker)
    fast = positive_probability(model.evidence, features)
    assert np.array_equal(fast, model.evidence.predict_proba(features)[:, 1])
    assert 0.0 < fast.min() < 0.05 and fast.max() > 0.5  # a real spread, not a constant
    assert positive_probability(model.stacker, np.zeros((0, model.stacker.n_features_in_))).shape == (0,)


def test_ties_missing_and_infinite_values_follow_the_library():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 12, size=(3000, 4)).astype(np.float64)  # many rows exactly at split thresholds
    y = (x[:, 0] + rng.normal(0, 2, 3000) > 6).astype(int)
    x[rng.random(x.shape) < 0.05] = np.nan
    model = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(x, y)
    query = np.vstack([x, rng.integers(-3, 15, size=(500, 4)).astype(np.float64)])
    query[rng.random(query.shape) < 0.05] = np.nan
    query[:20, 1], query[20:40, 2] = np.inf, -np.inf
    assert np.array_equal(positive_probability(model, query), model.predict_proba(query)[:, 1])


def test_other_classifiers_take_the_library_path():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 3))
    three = HistGradientBoostingClassifier(max_iter=5).fit(x, rng.integers(0, 3, 400))
    assert not _walks_bins(three)
    categorical = HistGradientBoostingClassifier(max_iter=5, categorical_features=[0])
    xc = np.column_stack([rng.integers(0, 4, 400), x[:, 1:]])
    categorical.fit(xc, rng.integers(0, 2, 400))
    assert not _walks_bins(categorical)
    assert np.array_equal(positive_probability(categorical, xc), categorical.predict_proba(xc)[:, 1])
