import warnings

import numpy as np
import pandas as pd
import pytest
from matminer.featurizers.composition import (
    ElementFraction,
    ElementProperty,
)
from pymatgen.core import Composition

from screening.composition import FormulaError
from screening.featurizers import (
    ElementFraction86,
    Magpie145,
    NumericColumns,
    UnsupportedCompositionError,
    get_featurizer,
)
from screening.featurizers import magpie as magpie_module


@pytest.fixture(scope="module")
def matminer_magpie145():
    return Magpie145.matminer_equivalent()


def assert_matches_oracle(ours: np.ndarray, oracle: np.ndarray, formulas, labels):
    """The issue's tolerance: 1e-9 absolute or 1e-6 relative, element by element."""
    err = np.abs(ours - oracle)
    bad = (err > 1e-9) & (err > 1e-6 * np.abs(oracle))
    details = [(formulas[r], labels[c], ours[r, c], oracle[r, c]) for r, c in zip(*np.nonzero(bad))][:5]
    assert not bad.any(), details


def test_magpie145_labels_are_matminers(matminer_magpie145):
    assert Magpie145().feature_labels() == matminer_magpie145.feature_labels()
    assert len(Magpie145().feature_labels()) == 145


def test_magpie145_equals_matminer(matminer_magpie145, formula_sample):
    ours = Magpie145().featurize_formulas(formula_sample)
    assert not ours.rejections
    oracle = np.array([matminer_magpie145.featurize(Composition(f)) for f in formula_sample], float)
    assert_matches_oracle(ours.values, oracle, formula_sample, Magpie145().feature_labels())
    # the sample exercises both outcomes of the charge-neutrality test
    assert 0 < ours.values[:, 142].mean() < 1


def test_charge_neutrality_paths_agree(formula_sample, monkeypatch):
    expanded = Magpie145().featurize_formulas(formula_sample).values[:, 142]
    monkeypatch.setattr(magpie_module, "_MAX_COMBINATIONS", 1)  # force the dynamic programme
    programmed = Magpie145().featurize_formulas(formula_sample).values[:, 142]
    np.testing.assert_array_equal(expanded, programmed)


def test_single_composition_api(matminer_magpie145):
    featurizer = Magpie145()
    values = featurizer.featurize("Fe2O3")
    assert isinstance(values, list) and len(values) == 145
    np.testing.assert_allclose(values, matminer_magpie145.featurize(Composition("Fe2O3")), rtol=1e-9, atol=1e-9)
    assert featurizer.featurize({"Fe": 2, "O": 3}) == pytest.approx(values)
    assert featurizer.citations() and featurizer.implementors()
    with pytest.raises(FormulaError, match="unknown element 'Xx'"):
        featurizer.featurize("Xx2O")
    with pytest.raises(FormulaError, match="unknown element 'Qq'"):
        featurizer.featurize({"Qq": 1})


def test_element_fraction86_equals_matminer(formula_sample):
    featurizer = ElementFraction86()
    labels = featurizer.feature_labels()
    assert len(labels) == 86 and labels[0] == "H" and labels[-1] == "Pu" and "He" not in labels
    table = featurizer.featurize_formulas(formula_sample)
    rejected = {r.formula for r in table.rejections}
    assert rejected == {"HeO"}
    oracle = ElementFraction()
    columns = [oracle.feature_labels().index(s) for s in labels]
    expected = np.array([oracle.featurize(Composition(f)) for f in table.formula])[:, columns]
    np.testing.assert_allclose(table.values, expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(table.values.sum(axis=1), 1.0)


def test_element_fraction86_rejects_other_elements_by_name():
    featurizer = ElementFraction86()
    with pytest.raises(UnsupportedCompositionError, match="Ne, Rn"):
        featurizer.featurize("NeRnO2")
    table = featurizer.featurize_formulas(["NaCl", "AmO2", "Xx", "KBr"])
    assert table.index.tolist() == [0, 3]
    assert [(r.index, r.formula) for r in table.rejections] == [(1, "AmO2"), (2, "Xx")]
    assert "Am" in table.rejections[0].reason and "unknown element" in table.rejections[1].reason


def test_numeric_columns_passthrough():
    frame = pd.DataFrame({"formula": ["A", "B", "C", "D"], "x": [1.0, np.nan, 3.0, 4.0], "y": ["1", "2", "oops", "4"]})
    featurizer = get_featurizer("columns:x,y")
    assert isinstance(featurizer, NumericColumns) and featurizer.spec() == "columns:x,y"
    table = featurizer.featurize_frame(frame)
    assert table.index.tolist() == [0, 3]
    np.testing.assert_array_equal(table.values, [[1.0, 1.0], [4.0, 4.0]])
    assert [r.index for r in table.rejections] == [1, 2]
    assert "'x'" in table.rejections[0].reason and "'oops'" in table.rejections[1].reason
    with pytest.raises(KeyError, match="'z'"):
        get_featurizer("columns:x,z").featurize_frame(frame)


def test_unknown_featurizer_is_named():
    with pytest.raises(ValueError, match="unknown featurizer 'magpie'"):
        get_featurizer("magpie")


def test_concatenation_is_the_parts_side_by_side():
    combined = get_featurizer("magpie145+elemfrac86")
    assert combined.spec() == "magpie145+elemfrac86" and len(combined.feature_labels()) == 231
    frame = pd.DataFrame({"formula": ["Fe2O3", "HeO", "NaCl", "Xx"]})
    table = combined.featurize_frame(frame)
    assert table.index.tolist() == [0, 2]
    assert [(r.index, r.formula) for r in table.rejections] == [(1, "HeO"), (3, "Xx")]
    expected = np.hstack(
        [
            Magpie145().featurize_formulas(["Fe2O3", "NaCl"]).values,
            ElementFraction86().featurize_formulas(["Fe2O3", "NaCl"]).values,
        ]
    )
    np.testing.assert_array_equal(table.values, expected)
    with pytest.raises(ValueError, match="collide"):
        get_featurizer("elemfrac86+elemfrac86")


@pytest.mark.parametrize(("ours", "preset"), [("mat2vec200", "matscholar_el")])
def test_element_embedding_means_equal_matminer(ours, preset):
    """The fraction-weighted mean columns of matminer's ElementProperty with the same data."""
    from pymatgen.core import Composition

    reference = ElementProperty.from_preset(preset)
    means = [i for i, label in enumerate(reference.feature_labels()) if " mean " in label]
    featurizer = get_featurizer(ours)
    formulas = ["Fe2O3", "LiMn2O4", "NaCl", "Cs0.5Pb1I3", "H2O", "Pu"]
    table = featurizer.featurize_frame(pd.DataFrame({"formula": formulas + ["Og1Xe1"]}))
    assert [r.formula for r in table.rejections] == ["Og1Xe1"] and "Og" in table.rejections[0].reason
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = np.array([np.array(reference.featurize(Composition(f)))[means] for f in formulas])
    np.testing.assert_allclose(table.values, expected, atol=1e-12)


@pytest.mark.parametrize("spec", ["magpie145+elemfrac86+mat2vec200", "columns:a,b"])
def test_blockwise_float32_features_equal_the_whole_table(spec):
    from screening.featurizers import get_featurizer

    frame = pd.DataFrame(
        {
            "formula": ["Fe2O3", "Xx2O", "LiCoO2", "NaCl", "", "Ca3(PO4)2", "Pu2O3", "MgO"],
            "a": [1.0, 2, 3, 4, 5, float("nan"), 7, 8],
            "b": [0.5] * 8,
        }
    )
    featurizer = get_featurizer(spec)
    whole = featurizer.featurize_frame(frame)
    for block in (3, 8, 100):
        blocks = featurizer.featurize_frame_float32(frame, block=block)
        assert blocks.values.dtype == np.float32 and blocks.labels == whole.labels
        # the embedding mean is a matmul, whose last bits may follow the block shape on some CPUs
        np.testing.assert_allclose(blocks.values, whole.values.astype(np.float32), rtol=1e-6, atol=1e-7)
        assert blocks.index.tolist() == whole.index.tolist() and blocks.formula.tolist() == whole.formula.tolist()
        assert [(r.index, r.reason) for r in blocks.rejections] == [(r.index, r.reason) for r in whole.rejections]


@pytest.mark.parametrize("spec", ["magpie145+elemfrac86+mat2vec200", "magpie145", "elemfrac86"])
def test_a_parsed_batch_featurizes_as_its_formulas_do(spec):
    """A screen featurizes its candidates as parsed batches, not as formula strings parsed again:
    the same values, rows and rejections, block by block."""
    from screening.composition import parse_formulas
    from screening.featurizers import get_featurizer

    formulas = ["Fe2O3", "HeO", "LiCoO2", "NaCl", "Pu2O3", "MgO", "Li2MnO3", "AmO2"]
    batch, rejected = parse_formulas(formulas)
    assert not rejected
    featurizer = get_featurizer(spec)
    for block in (3, 100):
        text = featurizer.featurize_frame_float32(pd.DataFrame({"formula": formulas}), block=block)
        parsed = featurizer.featurize_batch_float32(batch, block=block)
        assert np.array_equal(parsed.values, text.values) and parsed.index.tolist() == text.index.tolist()
        assert parsed.formula.tolist() == text.formula.tolist()
        assert [(r.index, r.formula, r.reason) for r in parsed.rejections] == [
            (r.index, r.formula, r.reason) for r in text.rejections
        ]
        assert len(parsed.index) + len(parsed.rejections) == len(formulas)
        assert bool(parsed.rejections) == (spec != "magpie145")  # elemfrac86 has no Am
