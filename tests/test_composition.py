import math
import random

import numpy as np
import pytest
from pymatgen.core import Composition

from screening.composition import FormulaError, parse_formula, parse_formulas
from screening.elements import ELEMNET_ELEMENTS, SYMBOLS


@pytest.mark.parametrize(
    "formula, expected",
    [
        ("Ca3(PO4)2", {"Ca": 3, "P": 2, "O": 8}),
        ("Li0.5CoO2", {"Li": 0.5, "Co": 1, "O": 2}),
        ("Al2Na1Sr1", {"Al": 2, "Na": 1, "Sr": 1}),
        ("NaN", {"Na": 1, "N": 1}),
        ("CH3COOH", {"C": 2, "H": 4, "O": 2}),
        ("Mg3[Fe(CN)6]2", {"Mg": 3, "Fe": 2, "C": 12, "N": 12}),
        ("Fe2 O3", {"Fe": 2, "O": 3}),
        ("Li.5Co1.", {"Li": 0.5, "Co": 1.0}),
    ],
)
def test_parse_formula_examples(formula, expected):
    assert parse_formula(formula) == pytest.approx(expected)
    batch, rejected = parse_formulas([formula])
    assert not rejected
    assert batch.as_dicts()[0] == pytest.approx(expected)


@pytest.mark.parametrize(
    "formula, reason",
    [
        ("", "empty formula"),
        ("   ", "empty formula"),
        ("Xx2O", "unknown element 'Xx'"),
        ("O0", "amount of O must be positive"),
        ("Fe(O)0", "amount of group must be positive"),
        ("Fe-2O3", "negative amounts"),
        ("Fe2O3!", "unexpected character '!'"),
        ("fe2o3", "capital letter"),
        ("Fe2O3)", "unmatched ')'"),
        ("Fe(O3", "unbalanced parentheses"),
        ("Fe()", "empty group"),
        (float("nan"), "missing (NaN)"),
        (None, "not a string"),
        ("Fe\u2082O\u2083", "unexpected character"),
        ("H" + "9" * 400 + "O", "amount of H is too large"),
    ],
)
def test_bad_formulas_name_formula_and_reason(formula, reason):
    with pytest.raises(FormulaError) as info:
        parse_formula(formula)
    assert reason in info.value.reason
    assert repr(formula) in str(info.value)
    batch, rejected = parse_formulas(["Fe2O3", formula, "NaCl"])
    assert [r.index for r in rejected] == [1]
    assert reason in rejected[0].reason
    assert batch.index.tolist() == [0, 2]
    assert batch.as_dicts() == [{"Fe": 2.0, "O": 3.0}, {"Na": 1.0, "Cl": 1.0}]


def test_batch_keeps_order_and_pads(all_formulas):
    batch, rejected = parse_formulas(all_formulas[:1000])
    assert not rejected and len(batch) == 1000
    for z, mask in zip(batch.z, batch.mask):  # ascending atomic numbers, padding last
        n = mask.sum()
        assert mask[:n].all() and not mask[n:].any() and (np.diff(z[:n]) > 0).all()
    assert np.allclose(batch.fraction.sum(axis=1), 1.0)


def test_vectorized_path_equals_exact_parser():
    rng = random.Random(7)
    formulas = []
    for _ in range(3000):
        parts = []
        for _ in range(rng.randint(1, 6)):
            amount = rng.choice(["", "1", "2", "10", "0.5", "1.25", ".75", "3.", "0.333", "007"])
            parts.append(rng.choice(SYMBOLS) + amount)
        formulas.append("".join(parts))
    batch, rejected = parse_formulas(formulas)
    assert not rejected
    for formula, parsed in zip(formulas, batch.as_dicts()):
        exact = parse_formula(formula)
        assert parsed.keys() == exact.keys()
        assert all(math.isclose(parsed[k], exact[k], rel_tol=1e-15) for k in exact), formula


def test_agrees_with_pymatgen_on_all_reference_formulas(all_formulas):
    batch, rejected = parse_formulas(all_formulas)
    assert not rejected
    assert len(batch) == len(all_formulas) == 178_267
    for formula, parsed in zip(all_formulas, batch.as_dicts()):
        reference = Composition(formula).get_el_amt_dict()
        assert parsed.keys() == reference.keys(), formula
        assert all(abs(parsed[k] - reference[k]) < 1e-12 for k in reference), formula


def test_non_string_and_empty_inputs():
    batch, rejected = parse_formulas([])
    assert len(batch) == 0 and not rejected
    batch, rejected = parse_formulas([float("nan"), 3, "O2"])
    assert [r.index for r in rejected] == [0, 1]
    assert batch.as_dicts() == [{"O": 2.0}]


def test_elemnet_elements():
    assert len(ELEMNET_ELEMENTS) == 86
    assert ELEMNET_ELEMENTS[:3] == ("H", "Li", "Be") and ELEMNET_ELEMENTS[-1] == "Pu"
    assert not {"He", "Ne", "Ar", "Po", "At", "Rn", "Fr", "Ra"} & set(ELEMNET_ELEMENTS)


def test_dopant_level_elements_are_flagged_not_hidden():
    batch, rejected = parse_formulas(["Fe0.0000001O", "H1000000O", "Fe2O3", "H1000000O1000000", "Li0.01Co0.99O2"])
    assert not rejected
    assert batch.dilute().tolist() == [True, True, False, False, False]  # HO is plain; Li at 0.33 at.% too
    assert batch.dilute(below=0.005).tolist()[-1]


def test_composition_keys_are_the_rows_symbols_and_rounded_fractions(all_formulas):
    batch, _ = parse_formulas(all_formulas + ["Fe4O6", "Fe2O3", "Li0.333333333O0.666666667", "H"])
    fractions = np.round(batch.fraction, 8).tolist()
    expected = [  # one row at a time, as the key is defined
        " ".join(f"{SYMBOLS[z - 1]}{f:g}" for z, f in zip(zr, fr) if z) for zr, fr in zip(batch.z.tolist(), fractions)
    ]
    keys = batch.composition_keys()
    assert keys == expected
    assert keys[-4] == keys[-3] == "O0.6 Fe0.4" and keys[-1] == "H1"
    assert parse_formulas([])[0].composition_keys() == []
