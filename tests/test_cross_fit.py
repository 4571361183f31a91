"""screening.cross_fit: probabilities for rows from models that never saw their chemical system."""

import numpy as np

from screening.cross_fit import fold_of, nested_p_stable


def test_a_system_falls_in_one_fold_whatever_else_is_in_the_table():
    systems = np.array(["Li-O", "Mn-O", "Li-Mn-O", "Li-O", "Fe-O"] * 20)
    fold = fold_of(systems, 5)
    assert all(len(set(fold[systems == s])) == 1 for s in set(systems))
    alone = fold_of(np.array(["Li-Mn-O"]), 5)
    assert alone[0] == fold[systems == "Li-Mn-O"][0]
    assert set(fold.tolist()) <= set(range(5)) and len(set(fold.tolist())) > 1


def test_rows_the_stacker_does_not_learn_from_are_scored_by_the_same_fold_models():
    """nested_p_stable(fit=...): a row outside ``fit`` (a system without a stable compound) is
    scored by the fold model of its system, as the rows inside are; its label is never read, and
    the rows inside get what they get without the others."""
    rng = np.random.default_rng(0)
    systems = np.repeat([f"S{i}" for i in range(60)], 40)
    x = rng.normal(size=(len(systems), 3))
    y = x[:, 0] + rng.normal(scale=0.5, size=len(systems)) > 1.2
    fit = np.isin(systems, [f"S{i}" for i in range(40)])
    p = nested_p_stable(x, y, systems, fit)
    assert np.array_equal(p[fit], nested_p_stable(x[fit], y[fit], systems[fit]))
    flipped = np.where(fit, y, ~y)  # labels of the rows not learnt from: never read
    np.testing.assert_array_equal(nested_p_stable(x, flipped, systems, fit), p)
    assert p[~fit].std() > 0.05 and np.corrcoef(p[~fit], x[~fit, 0])[0, 1] > 0.5  # scored, by models of the signal
