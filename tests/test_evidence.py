"""Evidence features: a known composition does not vote for itself, so a known compound looks
exactly as it would as an unknown candidate; the counts and the sub-system hull mean what
they say."""

import numpy as np
import pytest

from screening.composition import parse_formulas
from screening.evidence import FEATURES, KnownCompounds
from screening.rediscovery import situations

KNOWN = {
    "Li2O": -2.0,
    "MnO": -2.0,
    "MnO2": -1.8,
    "Mn2O3": -2.0,
    "LiMnO2": -2.1,
    "NaMnO2": -2.0,
    "KMnO2": -1.9,
    "Na2O": -1.4,
    "K2O": -1.2,
    "LiCoO2": -1.7,
    "CoO": -1.2,
    "Li2MnO3": -2.1,
    "FeO": -1.4,
    "Fe2O3": -1.7,
    "LiFeO2": -1.8,
    "NaFeO2": -1.7,
    "Li5FeO4": -1.9,
}


def known(formulas=KNOWN):
    batch, rejected = parse_formulas(list(formulas))
    assert not rejected
    return KnownCompounds(batch, np.array([KNOWN[f] for f in formulas]))


def column(x, name):
    return x[:, FEATURES.index(name)]


@pytest.mark.parametrize("formula", ["LiMnO2", "Li2MnO3", "NaFeO2", "Li5FeO4"])
def test_a_known_compound_has_the_features_it_would_have_as_a_candidate(formula):
    batch, _ = parse_formulas([formula])
    with_it = known().features(batch)
    without = known([f for f in KNOWN if f != formula]).features(batch)
    np.testing.assert_allclose(with_it, without, atol=1e-12)


def test_counts_of_analogues_and_sub_system_geometry():
    batch, _ = parse_formulas(["LiMnO2", "KFeO2", "LiMn5O3", "Li2Mn2O4"])
    x = known().features(batch)
    # ABO2-type ternaries among the others: NaMnO2, KMnO2, LiCoO2, LiFeO2, NaFeO2 (+ LiMnO2 for the rest)
    np.testing.assert_allclose(np.expm1(column(x, "log_same_anonymous")), [5, 6, 0, 5])
    # the same elements' groups at the same fractions (alkali, transition metal of group 7/8, oxygen)
    assert np.expm1(column(x, "log_same_group_pattern"))[1] == pytest.approx(
        2
    )  # KFeO2: LiFeO2, NaFeO2 (LiCoO2: group 9)
    np.testing.assert_allclose(
        np.expm1(column(x, "log_system_known")), [1, 0, 2, 1]
    )  # Li2MnO3 (and LiMnO2 for the others)
    np.testing.assert_allclose(x[0], x[3])  # Li2Mn2O4 is LiMnO2
    assert column(x, "sub_hull_phases")[0] == 2 and column(x, "sub_hull_energy")[0] == pytest.approx(-2.0)  # Li2O + MnO
    assert column(x, "charge_balanced_ordered").tolist() == [0, 1, 0, 0]  # pymatgen's common Mn states are +2, +4, +7
    assert np.isfinite(x).all() and x.shape == (4, len(FEATURES))


def test_a_rediscovery_situation_hides_what_it_asks_for():
    names = list(KNOWN)
    hidden = ["LiMnO2", "Li2MnO3", "Mn2O3"]
    kb, _ = parse_formulas([f for f in names if f not in hidden])
    hb, _ = parse_formulas(hidden)
    energy = lambda b: np.array([KNOWN[f] for f in b.formula])  # noqa: E731
    (ternary,) = situations(kb, energy(kb), hb, energy(hb), arities=(3,))
    assert ternary.systems == [(3, 8, 25)]  # Li-Mn-O, the positives' system
    stable = set(ternary.candidates.batch.formula[ternary.stable])
    assert stable == {"LiMnO2", "Li2MnO3"}  # both on the hull of everything
    assert "Mn2O3" in set(ternary.known.formula)  # a hidden compound of fewer elements is given as known
    assert len(ternary.candidates) == 109 and ternary.stable.sum() == 2  # no Li-Mn-O compound was known


def test_null_systems_add_the_grids_of_systems_whose_hidden_compounds_are_all_unstable():
    names = list(KNOWN)
    hidden = ["LiMnO2", "Li2MnO3", "Mn2O3", "Li5FeO4"]  # Li5FeO4 far above the Li2O-FeO-Fe2O3 hull
    energies = KNOWN | {"Li5FeO4": 0.5}
    kb, _ = parse_formulas([f for f in names if f not in hidden])
    hb, _ = parse_formulas(hidden)
    energy = lambda b: np.array([energies[f] for f in b.formula])  # noqa: E731
    (plain,) = situations(kb, energy(kb), hb, energy(hb), arities=(3,))
    (ternary,) = situations(kb, energy(kb), hb, energy(hb), arities=(3,), null_systems=True)
    assert plain.systems == [(3, 8, 25)] and ternary.null_systems == ((3, 8, 26),)
    li_fe_o = ternary.candidates.chemsys == "Fe-Li-O"
    assert ternary.systems == [(3, 8, 25), (3, 8, 26)] and len(ternary.candidates) == 109 + li_fe_o.sum()
    assert li_fe_o.sum() == 109 - ("LiFeO2" in KNOWN) and not ternary.stable[li_fe_o].any()  # no stable compound
    assert ternary.stable.sum() == plain.stable.sum() == 2


def test_a_screens_placement_on_the_known_hull_stands_in_for_the_sub_system_hull(data_dir):
    """Where the known hull holds no stable compound of a candidate's own system, it has the sub-
    system hull's points there: the placement a screen already made gives bit-identical features;
    elsewhere (here Li-Mn-O, Li-Fe-O, ...) the sub-system hull is still used."""
    import pandas as pd

    from screening.datasets import load_reference
    from screening.enumerate import Grid, space
    from screening.evidence import Placement
    from screening.hull import ReferenceHull, chemical_systems, restrict

    frame = pd.concat([load_reference("mp_e_form", "train"), load_reference("mp_e_form", "val")])
    batch, _ = parse_formulas(frame["formula"].tolist())
    energy = frame["target"].to_numpy()
    elements = {3, 8, 25, 26, 11}  # Li O Mn Fe Na
    evidence = KnownCompounds(batch, energy, frozenset(elements))
    hull = ReferenceHull(*restrict(batch, energy, elements))
    candidates = next(space(["Li", "Na", "Mn", "Fe", "O"], 4, Grid(6)).chunks(100_000)).batch
    systems = chemical_systems(candidates)
    own = [len(hull.stable_rows.get(s, ())) > 0 for s in systems]
    assert any(own) and not all(own)  # both ways are exercised
    placed = Placement(hull, *hull.place(candidates))
    np.testing.assert_array_equal(evidence.features(candidates, placed), evidence.features(candidates))
    # the hull energy and the smallest phase's share reach the trees rounded: an energy or a weight
    # 1 ulp off (another hull path, another CPU's LAPACK) gives the same features
    nudged = Placement(hull, np.nextafter(placed.energy, -1.0), placed.vertices, np.nextafter(placed.weights, 2.0))
    column = FEATURES.index("sub_hull_min_phase_fraction")
    exact = evidence.features(candidates, placed)
    assert (exact[:, column] == np.round(exact[:, column], 9)).all() and (exact[:, column] > 0).any()
    np.testing.assert_array_equal(evidence.features(candidates, nudged), exact)
