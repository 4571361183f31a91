import numpy as np
import pytest
from pymatgen.core import Composition

from screening.composition import parse_formulas
from screening.enumerate import MAX_CANDIDATES, Grid, count, grid_template, space
from screening.oxidation import charge_neutral


def test_elemnet_grid_sizes():
    assert [len(grid_template(k, Grid(max_atoms=10))) for k in (2, 3, 4)] == [31, 109, 205]
    assert len(grid_template(3, Grid(max_atoms=None, max_amount=8))) == 439


@pytest.mark.parametrize("grid", [Grid(10), Grid(None, 8), Grid(12, 5), Grid(7, 3)])
def test_grid_matches_brute_force(grid):
    import itertools
    import math

    from screening.enumerate import grid_size

    for k in (2, 3, 4):
        brute = [
            v
            for v in itertools.product(range(1, 13), repeat=k)
            if (grid.max_atoms is None or sum(v) <= grid.max_atoms)
            and (grid.max_amount is None or max(v) <= grid.max_amount)
            and math.gcd(*v) == 1
        ]
        template = grid_template(k, grid)
        assert grid_size(k, grid) == len(template) == len(brute)
        assert sorted(map(tuple, template.tolist())) == sorted(brute)


def test_space_is_reduced_unique_deterministic_and_counted():
    candidates = space(["O", "Li", "Mn", "Fe"], max_arity=4)
    chunks = list(candidates.chunks(chunk_size=97))
    assert candidates.size() == count(["Li", "Mn", "Fe", "O"], 4) == sum(len(c) for c in chunks)
    assert [len(c) for c in chunks[:-1]] == [97] * (len(chunks) - 1)
    ids = np.concatenate([c.candidate_id for c in chunks])
    assert (ids == np.arange(candidates.size())).all()
    formulas = [f for c in chunks for f in c.batch.formula]
    keys = [k for c in chunks for k in c.batch.composition_keys()]
    assert len(set(keys)) == len(keys)  # reduced and de-duplicated
    assert formulas[:3] == ["LiO", "LiO2", "LiO3"] and "Li2MnO3" in formulas and "LiFeO2" in formulas
    parsed, rejected = parse_formulas(formulas)  # the formula strings say what the arrays say
    assert not rejected
    assert parsed.as_dicts() == [d for c in chunks for d in c.batch.as_dicts()]
    other = [f for c in candidates.chunks(chunk_size=1000) for f in c.batch.formula]
    assert other == formulas  # same order and ids whatever the chunking
    assert {s for c in chunks for s in c.chemsys} >= {"Li-O", "Fe-Li-Mn-O"}


def test_explicit_systems_and_grid_options():
    candidates = space(systems=[["Ba", "Ti", "O"], ["O", "Ti"]], grid=Grid(max_atoms=None, max_amount=3))
    assert candidates.systems == ((8, 22), (8, 22, 56))
    chunk = next(candidates.chunks(10_000))
    assert chunk.batch.amount.max() == 3 and "BaTiO3" in set(chunk.batch.formula)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"elements": []}, "element list is empty"),
        ({"elements": ["Li", "Xx"]}, "unknown element symbol(s): 'Xx'"),
        ({"elements": ["Li", "Li"]}, "repeated elements"),
        ({"elements": ["Li", "O"], "max_arity": 6}, "max arity <= 5"),
        ({"elements": ["Li", "O"], "grid": None}, None),
    ],
)
def test_bad_requests_are_named(kwargs, message):
    if message is None:
        with pytest.raises(ValueError, match="needs max_atoms, max_amount or both"):
            Grid(max_atoms=None, max_amount=None)
        return
    with pytest.raises(ValueError) as info:
        space(**kwargs)
    assert message in str(info.value)


def test_too_large_a_space_is_refused():
    elements = list(
        """
        H Li Be B C N O F Na Mg Al Si P S Cl K Ca Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge
        As Se Br Rb Sr
        """.split()
    )
    assert count(elements, 5, Grid(max_atoms=40)) > MAX_CANDIDATES
    with pytest.raises(ValueError, match="narrow it"):
        space(elements, 5, Grid(max_atoms=40))
    with pytest.raises(ValueError, match="lower max_atoms or max_amount"):
        space(["Li", "Na", "K", "Rb", "Cs"], 5, Grid(max_atoms=60))


def test_charge_neutral_filter():
    batch, _ = parse_formulas(["Fe2O3", "NaCl", "Li2MnO3", "BaTiO3", "NaCl2", "LiO", "Fe3O4", "Fe3Al", "OF2", "ClNa"])
    # OF2 fails: pymatgen's common oxidation states of O are (-2,) only
    assert charge_neutral(batch).tolist() == [True, True, True, True, False, False, False, True, False, True]
    assert charge_neutral(batch, allow_alloys=False)[7] == False  # noqa: E712
    assert charge_neutral(batch, electronegativity_order=False).tolist()[:7] == [
        True,
        True,
        True,
        True,
        False,
        False,
        False,
    ]


def test_charge_neutral_implies_a_pymatgen_oxidation_state_guess(all_formulas):
    from screening.element_tables import pymatgen_ion_data

    _, states, n_states = pymatgen_ion_data()
    rng = np.random.default_rng(1)
    sample = [all_formulas[i] for i in rng.choice(len(all_formulas), 400, replace=False)]
    batch, _ = parse_formulas(sample)
    small = batch.select(batch.amount.sum(axis=1) <= 20)  # keep pymatgen's guesser fast
    ours = charge_neutral(small, electronegativity_order=False, allow_alloys=False)
    assert 0.2 < ours.mean() < 0.95
    for formula, zs, neutral in zip(small.formula, small.z, ours):
        if neutral:
            override = {
                Composition(formula).elements[0].from_Z(int(z)).symbol: states[z, : n_states[z]].tolist()
                for z in zs
                if z
            }
            assert Composition(formula).oxi_state_guesses(oxi_states_override=override), formula


def test_reduced_formulas_of_any_composition():
    from screening.composition import parse_formulas
    from screening.enumerate import reduced_formulas

    batch, _ = parse_formulas(["Li8O4", "Na1O2", "Mn24O32", "Li0.5CoO2", "O2", "Ba1Ti1O3"])
    assert reduced_formulas(batch) == ["Li2O", "NaO2", "Mn3O4", "Li0.5CoO2", "O", "BaTiO3"]


def test_counting_a_huge_grid_is_closed_form():
    """--max-atoms 100000 used to hang for minutes in a quadratic count before any message."""
    import time

    from screening.enumerate import Grid, grid_size

    started = time.perf_counter()
    assert grid_size(2, Grid(100_000)) == 3_039_650_753  # pairs (a, b), a + b <= 1e5, gcd 1
    assert grid_size(3, Grid(100_000)) > 10**14
    assert time.perf_counter() - started < 5


def test_both_neutrality_answers_of_one_expansion_equal_the_exact_search(all_formulas):
    """neutral_assignments: the vectorized expansion (both answers at once) against the exact
    search over reachable charges and over every choice, row by row."""
    from screening.element_tables import pymatgen_ion_data
    from screening.oxidation import neutral_assignment_exists, neutral_assignments

    chi, states, n_states = pymatgen_ion_data()
    rng = np.random.default_rng(2)
    batch, _ = parse_formulas([all_formulas[i] for i in rng.choice(len(all_formulas), 2_000, replace=False)])
    args = (batch.z, batch.amount, states, n_states)
    balanced, ordered = neutral_assignments(*args, chi)
    searched = neutral_assignments(*args, chi, max_combinations=0)
    np.testing.assert_array_equal(balanced, searched[0])
    np.testing.assert_array_equal(ordered, searched[1])
    assert 0 < ordered.sum() < balanced.sum() < len(batch)  # both answers, and they differ
    np.testing.assert_array_equal(neutral_assignment_exists(*args, chi), ordered)
    assert neutral_assignments(*args)[1] is None
