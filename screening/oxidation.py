"""Charge neutrality with one oxidation state per element, vectorized over a batch.

Used two ways: matminer's ``IonProperty(fast=True)`` "compound possible" (any combination of
pymatgen's common oxidation states with a charge sum ``np.isclose`` to zero) inside Magpie145,
and the SMACT-style screening filter, which also asks that every cation be less
electronegative than every anion (Pauling) and can let all-metal compositions (alloys) pass.
"""

from __future__ import annotations

from itertools import product

import numpy as np

from screening.composition import CompositionBatch
from screening.element_tables import metal_flags, pymatgen_ion_data

ATOL = 1e-8  # numpy.isclose(x, 0): |x| <= atol


def neutral_assignment_exists(
    z: np.ndarray,
    amount: np.ndarray,
    states: np.ndarray,
    n_states: np.ndarray,
    electronegativity: np.ndarray | None = None,
    max_combinations: int = 2048,
) -> np.ndarray:
    """For each row of ``z``/``amount`` (padded with 0), whether some choice of one oxidation
    state per element (``states[z, :n_states[z]]``) sums to zero charge, and, if
    ``electronegativity`` is given, puts every cation below every anion in electronegativity.

    Rows with at most ``max_combinations`` choices expand them all at once (mixed-radix
    order); the rare larger rows take an exact search over reachable charge sums."""
    balanced, ordered = neutral_assignments(z, amount, states, n_states, electronegativity, max_combinations)
    return balanced if electronegativity is None else ordered


def neutral_assignments(
    z: np.ndarray,
    amount: np.ndarray,
    states: np.ndarray,
    n_states: np.ndarray,
    electronegativity: np.ndarray | None = None,
    max_combinations: int = 2048,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Both answers of :func:`neutral_assignment_exists` from one expansion of the choices:
    whether a neutral choice exists, and (with ``electronegativity``, else ``None``) whether one
    exists with every cation below every anion."""
    mask = z > 0
    counts = np.where(mask, n_states[z], 1)
    combos = counts.prod(axis=1)
    balanced = np.zeros(len(z), bool)
    ordered = None if electronegativity is None else np.zeros(len(z), bool)
    small = np.flatnonzero((combos > 0) & (combos <= max_combinations))
    if len(small):
        c = combos[small]
        row = np.repeat(np.arange(len(small)), c)
        code = np.arange(c.sum()) - np.repeat(np.cumsum(c) - c, c)
        charge = np.zeros(len(row))
        max_cation = np.full(len(row), -np.inf)
        min_anion = np.full(len(row), np.inf)
        stride = np.ones(len(small), np.int64)
        for j in range(z.shape[1]):
            k = counts[small, j]
            zj = z[small, j][row]
            state = states[zj, (code // stride[row]) % k[row]]
            charge += state * amount[small, j][row]
            if electronegativity is not None:
                chi = electronegativity[zj]
                max_cation = np.where(state > 0, np.maximum(max_cation, chi), max_cation)
                min_anion = np.where(state < 0, np.minimum(min_anion, chi), min_anion)
            stride *= k
        ok = np.abs(charge) <= ATOL
        balanced[small] = np.bincount(row, weights=ok, minlength=len(small)) > 0
        if ordered is not None:
            ok &= max_cation < min_anion
            ordered[small] = np.bincount(row, weights=ok, minlength=len(small)) > 0
    for r in np.flatnonzero(combos > max_combinations):
        zs, amounts = z[r][mask[r]], amount[r][mask[r]]
        reachable = np.zeros(1)
        for zz, a in zip(zs, amounts):
            reachable = np.unique((reachable[:, None] + states[zz, : n_states[zz]] * a).ravel())
        balanced[r] = bool((np.abs(reachable) <= ATOL).any())
        if ordered is not None:
            choices = [states[zz, : n_states[zz]] for zz in zs]
            chi = electronegativity[zs]
            ordered[r] = balanced[r] and any(
                abs(np.dot(pick, amounts)) <= ATOL
                and chi[np.array(pick) > 0].max(initial=-np.inf) < chi[np.array(pick) < 0].min(initial=np.inf)
                for pick in product(*choices)
            )
    return balanced, ordered


def charge_neutral(
    batch: CompositionBatch, electronegativity_order: bool = True, allow_alloys: bool = True
) -> np.ndarray:
    """The screening filter: charge-neutral with pymatgen's common oxidation states (one per
    element), cations less electronegative than anions; all-metal compositions pass when
    ``allow_alloys`` (as SMACT's ``smact_validity(include_alloys=True)``)."""
    chi, states, n_states = pymatgen_ion_data()
    ok = neutral_assignment_exists(batch.z, batch.amount, states, n_states, chi if electronegativity_order else None)
    if allow_alloys:
        ok |= (metal_flags()[batch.z] | ~batch.mask).all(axis=1)
    return ok
