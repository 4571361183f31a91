import warnings

import numpy as np
import pandas as pd
import pytest
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition

import screening.hull_solve as hull_solve
from screening.cli import main
from screening.composition import CompositionBatch, parse_formulas
from screening.elements import Z_OF
from screening.hull import hull_distances
from screening.hull_lp import PADDING_COST, simplex_batch

SYSTEMS = [
    ("Na", "Cl"),
    ("Li", "Fe", "O"),
    ("Ba", "Ti", "O"),
    ("Li", "Mn", "Co", "Ni", "O"),
    ("Cs", "Pb", "I", "Br", "Cl", "O", "H"),
]


def pymatgen_reference(formulas, energies, elements):
    entries = [PDEntry(Composition(f), e * Composition(f).num_atoms) for f, e in zip(formulas, energies)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        diagram = PhaseDiagram(entries + [PDEntry(Composition(s), 0.0) for s in elements])
        results = [diagram.get_decomp_and_e_above_hull(e, allow_negative=True) for e in entries]
    return np.array([r[1] for r in results]), [{d.composition.reduced_formula for d in r[0]} for r in results]


@pytest.mark.parametrize("system", SYSTEMS, ids="-".join)
@pytest.mark.parametrize(
    "simplex_max_work", [0, 10**12], ids=["qhull", "simplex"]
)  # how systems of 2-5 elements are solved
def test_equals_pymatgen_on_real_systems(mp_e_form, system, simplex_max_work, monkeypatch):
    monkeypatch.setattr(hull_solve, "SIMPLEX_MAX_WORK", simplex_max_work)
    batch, energies = mp_e_form
    allowed = {Z_OF[s] for s in system}
    rows = np.array([set(z[z > 0].tolist()) <= allowed for z in batch.z])
    sub, e = batch.select(rows), energies[rows]
    result = hull_distances(sub, e)
    expected, decompositions = pymatgen_reference(sub.formula, e, system)
    np.testing.assert_allclose(result.e_above_hull, expected, atol=1e-9)
    ours = [
        {Composition(p.split(":")[0]).reduced_formula for p in d.split(" + ")}
        for d in result.decomposition_strings(sub.formula)
    ]
    assert ours == decompositions
    assert result.stable.sum() >= 1 and (~result.stable).sum() >= 1


def test_toy_binary_and_decomposition():
    batch, _ = parse_formulas(["NaCl", "Na2Cl", "NaCl3", "Na3Cl", "NaCl"])
    result = hull_distances(batch, np.array([-2.0, -0.5, -0.3, -1.6, -1.9]))
    np.testing.assert_allclose(result.e_above_hull, [0, 1.2333333333, 0.7, 0, 0.1], atol=1e-9)
    assert result.stable.tolist() == [True, False, False, True, False]
    assert result.decomposition_strings(batch.formula)[2] == "Cl:0.5 + NaCl:0.5"  # equal fractions by name
    assert result.decomposition_strings(batch.formula)[4] == "NaCl:1"


def test_bad_energies_are_named():
    batch, _ = parse_formulas(["NaCl", "KBr"])
    with pytest.raises(ValueError, match="row 1 \\(KBr\\) is nan"):
        hull_distances(batch, np.array([-1.0, np.nan]))
    with pytest.raises(ValueError, match="one energy per composition"):
        hull_distances(batch, np.array([-1.0]))


def test_hull_cli(tmp_path, capsys):
    source = tmp_path / "e.csv"
    pd.DataFrame({"formula": ["NaCl", "Na3Cl", "NaCl3", "Qq", "KCl"], "target": [-2.0, -1.6, -0.3, -1.0, "x"]}).to_csv(
        source, index=False
    )
    assert main(["hull", "--data", str(source), "--out", str(tmp_path / "h.parquet")]) == 0
    out = pd.read_parquet(tmp_path / "h.parquet")
    assert out["formula"].tolist() == ["NaCl", "Na3Cl", "NaCl3"]
    assert out["chemsys"].tolist() == ["Cl-Na"] * 3 and out["stable"].tolist() == [True, True, False]
    assert (out["e_above_hull"] >= 0).all() and (out.loc[out["stable"], "e_above_hull"] == 0).all()  # no -1e-15
    assert "2 rows rejected" in capsys.readouterr().out
    rejected = pd.read_csv(tmp_path / "h.rejected.csv")
    assert rejected["formula"].tolist() == ["Qq", "KCl"]


def test_flat_simplices_from_triangulation_are_skipped():
    """A real quaternary (known compounds + 205 bf16-scored candidates from the 1M benchmark)
    where qhull's triangulation leaves flat lower simplices: their barycentric systems are
    singular. The hull must still equal the linear programme's, with exact decompositions."""
    from pathlib import Path

    from screening.hull_solve import _linprog, _qhull, lower_facets, plane_energies

    case = np.load(Path(__file__).parent / "data" / "flat_simplices_quaternary.npz")
    comp, e, query = case["comp"], case["e"], case["query"]
    energy, vertices, weights, equations = _qhull(comp, e, query)
    expected = [_linprog(comp, e, q)[0] for q in query]
    np.testing.assert_allclose(energy, expected, atol=1e-9)
    # energies alone, from the lower facets' planes, flat simplices included (they lie in their facet's plane)
    # (the same planes, in products of other widths: equal up to the last bits a CPU's BLAS may move)
    np.testing.assert_allclose(plane_energies(equations, query).max(axis=1), energy, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(lower_facets(comp, e), equations)
    for v, w, q, h in zip(vertices, weights, query, energy):
        assert (w >= 0).all() and abs(w.sum() - 1) < 1e-12
        np.testing.assert_allclose(w @ comp[v], q, atol=1e-12)
        assert abs(w @ e[v] - h) < 1e-9


def random_grid_problems(rng, n: int, count: int, most: int):
    """Hull problems on integer stoichiometry grids: duplicate compositions, compositions
    on facets and queries equal to points, the degenerate cases of real data."""
    points = np.zeros((count, n + most, n))
    costs = np.full((count, n + most), PADDING_COST)
    points[:, :n], costs[:, :n] = np.eye(n), 0.0
    queries = np.zeros((count, n))
    for i in range(count):
        k = int(rng.integers(0, most + 1))
        amounts = rng.integers(0, 4, (k, n))
        amounts[amounts.sum(axis=1) == 0, 0] = 1
        points[i, n : n + k] = amounts / amounts.sum(axis=1, keepdims=True)
        costs[i, n : n + k] = -2 * rng.random(k)
        q = points[i, n + int(rng.integers(0, k))] if k and rng.random() < 0.3 else rng.integers(1, 4, n)
        queries[i] = q / q.sum()
    return points, costs, queries


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("bland_after", [None, 0], ids=["dantzig", "bland"])
def test_batched_simplex_equals_the_linear_programme(n, bland_after):
    from screening.hull_solve import _linprog

    points, costs, queries = random_grid_problems(np.random.default_rng(n), n, 300, 4 * n + 4)
    energy, basis, weights, converged = simplex_batch(points, costs, queries, bland_after=bland_after)
    assert converged.all()
    expected = [_linprog(p[c < PADDING_COST], c[c < PADDING_COST], q)[0] for p, c, q in zip(points, costs, queries)]
    np.testing.assert_allclose(energy, expected, atol=1e-12)
    chosen = np.take_along_axis(points, basis[:, :, None], 1)
    np.testing.assert_allclose(np.einsum("pn,pnk->pk", weights, chosen), queries, atol=1e-12)
    assert (weights >= 0).all() and (np.take_along_axis(costs, basis, 1)[weights > 0] < PADDING_COST).all()


def test_unfinished_simplex_problems_fall_back_to_the_exact_programme(monkeypatch):
    """A problem the simplex method does not finish (here: no pivots allowed) is solved by the
    linear programme, with the same answer."""
    from screening import hull_lp

    batch, _ = parse_formulas(["NaCl", "Na2Cl", "NaCl3", "Na3Cl", "NaCl"])
    energies = np.array([-2.0, -0.5, -0.3, -1.6, -1.9])
    expected = hull_distances(batch, energies).e_above_hull
    real = hull_lp.simplex_batch
    monkeypatch.setattr(hull_solve, "simplex_batch", lambda *a, **k: real(*a, **k, max_pivots=0))
    np.testing.assert_allclose(hull_distances(batch, energies).e_above_hull, expected, atol=1e-12)


def test_phase_summary_equals_the_decompositions():
    from screening.composition import parse_formulas
    from screening.hull import ReferenceHull

    known, _ = parse_formulas(["Li2O", "MnO", "MnO2", "Mn2O3", "Li2O2", "LiMn2"])
    hull = ReferenceHull(known, np.array([-2.0, -2.0, -1.8, -2.0, -1.3, -0.1]))
    queries, _ = parse_formulas(["LiMnO2", "Li2MnO3", "LiMn5O3", "Li5MnO", "MnO"])
    energy, decomposition = hull.energy_at(queries)
    e, phases, smallest, elements = hull.phase_summary(queries)
    np.testing.assert_allclose(e, energy)
    assert phases.tolist() == [len(r) for r, _ in decomposition]
    np.testing.assert_allclose(smallest, [f.min() for _, f in decomposition])
    assert elements.tolist() == [int((r < 0).sum()) for r, _ in decomposition]


def test_a_hull_built_on_threads_is_the_hull_built_on_one(mp_e_form, monkeypatch):
    """ReferenceHull(threads=2): qhull calls of one arity on two threads, each system writing its
    own rows; the same energies, stable sets and decompositions as on one."""
    from screening.hull import ReferenceHull

    monkeypatch.setattr(hull_solve, "SIMPLEX_MAX_WORK", 0)  # every system of 2-5 elements through qhull
    batch, energies = mp_e_form
    allowed = {Z_OF[s] for s in ("Li", "Mn", "Co", "Ni", "Fe", "O", "F", "P")}
    rows = np.array([set(z[z > 0].tolist()) <= allowed for z in batch.z])
    sub, e = batch.select(rows), energies[rows]
    one, two = ReferenceHull(sub, e), ReferenceHull(sub, e, threads=2)
    np.testing.assert_array_equal(two.result.e_above_hull, one.result.e_above_hull)
    np.testing.assert_array_equal(two.result.stable, one.result.stable)
    assert two.result.decomposition_strings(sub.formula) == one.result.decomposition_strings(sub.formula)
    assert two.stable_rows.keys() == one.stable_rows.keys() and two.planes.keys() == one.planes.keys()
    assert all(np.array_equal(two.stable_rows[s], one.stable_rows[s]) for s in one.stable_rows)
    assert len(one.stable_rows) >= 40 and one.result.stable.sum() >= 40  # systems enough to be split


def test_energies_alone_reuse_the_lower_facets_of_the_build_and_equal_the_placement(mp_e_form, monkeypatch):
    """ReferenceHull.energies_at (the ranking's combined hull): systems the build solved with
    qhull are placed on the facets it kept, the others on hulls built now without decompositions;
    the energies are the placement's (place), with fewer qhull calls."""
    from screening.enumerate import Grid, space
    from screening.hull import ReferenceHull, restrict

    elements = ("Li", "Mn", "Fe", "O")
    candidates = next(space(list(elements), 4, Grid(8)).chunks(20_000)).batch
    known, energy = restrict(*mp_e_form, {Z_OF[s] for s in elements})
    known_e, _ = ReferenceHull(known, energy).energy_at(candidates)
    below = np.random.default_rng(0).random(len(candidates)) < 0.1  # as a screen's candidates below the known hull
    combined = ReferenceHull(
        CompositionBatch.concat(known, candidates.select(np.flatnonzero(below))),
        np.concatenate([energy, known_e[below] - 0.05]),
        decompositions=False,
    )
    assert 0 < len(combined.planes) < len(combined.stable_rows)  # some systems built by qhull, some not
    calls = []
    real = hull_solve._convex_hull
    monkeypatch.setattr(hull_solve, "_convex_hull", lambda *a: calls.append(1) or real(*a))
    placed = combined.place(candidates)[0]
    built_while_placing = len(calls)
    alone = combined.energies_at(candidates)
    np.testing.assert_allclose(alone, placed, rtol=0, atol=1e-12)
    assert len(calls) - built_while_placing < built_while_placing
