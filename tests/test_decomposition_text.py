"""screening.decomposition_text: a chunk's decompositions as text at once, the row-by-row strings."""

import numpy as np

from screening.elements import Z_OF


def test_padded_decompositions_give_the_row_by_row_strings(mp_e_form):
    from screening.decomposition_text import decomposition_strings, mixture_strings
    from screening.enumerate import Grid, reduced_formulas, space
    from screening.hull import ReferenceHull, restrict

    candidates = next(space(["Li", "Mn", "Fe", "O"], 4, Grid(8)).chunks(20_000)).batch
    known, energy = restrict(*mp_e_form, {Z_OF[s] for s in ("Li", "Mn", "Fe", "O")})
    hull = ReferenceHull(known, energy)
    names = reduced_formulas(known)
    hull_e, decomposition = hull.energy_at(candidates)
    placed_e, ids, weights = hull.place(candidates)
    np.testing.assert_array_equal(placed_e, hull_e)
    for digits in (4, 6):
        rows = decomposition_strings(decomposition, names, digits)
        assert mixture_strings(ids, weights, names, digits) == rows
    assert any(" + " in r and r.count(":0.5") == 2 for r in rows)  # equal shares, ordered by name


def test_decomposition_strings_of_no_rows_and_of_rows_without_phases():
    from screening.decomposition_text import mixture_strings

    assert mixture_strings(np.zeros((0, 3), np.int64), np.zeros((0, 3)), ["Li2O"]) == []
    ids = np.array([[-3, 0, 0], [0, 0, 0], [-8, -8, 1]])
    weights = np.array([[2.0, 0, 0], [0, 0, 0], [0.25, 0.25, 0.5]])
    assert mixture_strings(ids, weights, ["Li2O", "MnO"]) == ["Li:1", "", "MnO:0.5 + O:0.25 + O:0.25"]
