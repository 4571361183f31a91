"""Many small hull problems at once: the revised simplex method, vectorized over problems.

The hull energy at a composition ``q`` of an ``n``-element system is the linear programme

    minimise  e . x   subject to   A^T x = q,  x >= 0

over the system's points (rows of ``A``: atom fractions, summing to 1; ``e``: energies per atom),
and the optimal basis is the decomposition. A chemical system of a real data set has a handful
to a few dozen points, so one qhull call or one ``linprog`` per system costs far more in call
overhead than in arithmetic (36,000 systems in mp_e_form). Here every problem of a batch
advances one pivot per numpy step instead.

The first ``n`` points of every problem must be the pure elements (the identity), which makes
``x = q`` on the element basis a feasible start: no phase one. Pivots follow Dantzig's rule and
switch to Bland's (which cannot cycle) if a problem has not finished after ``4 n + 20`` pivots;
the few problems still unfinished after that are returned as such for an exact fallback.
"""

from __future__ import annotations

import numpy as np

COST_TOL = 1e-10  # eV/atom: a reduced cost above -COST_TOL cannot improve the hull energy
PIVOT_TOL = 1e-9  # smallest direction component accepted as a pivot
PADDING_COST = 1e6  # padded point slots (all-zero compositions) never enter the basis


def simplex_batch(
    points: np.ndarray,
    costs: np.ndarray,
    queries: np.ndarray,
    max_pivots: int | None = None,
    bland_after: int | None = None,
):
    """Minimum-cost mixtures of ``points`` (``(P, M, n)``; slots ``0..n-1`` the identity; padding
    rows all zero with cost :data:`PADDING_COST`) with costs ``(P, M)`` at ``queries`` ``(P, n)``.

    Returns ``(energy (P,), basis (P, n) point slots, weights (P, n), converged (P,) bool)``;
    weights are exact solves of the final basis, clipped at 0.
    """
    p, m, n = points.shape
    max_pivots = max_pivots if max_pivots is not None else 20 * n + 100
    bland_after = bland_after if bland_after is not None else 4 * n + 20
    basis = np.tile(np.arange(n), (p, 1))
    inverse = np.tile(np.eye(n), (p, 1, 1))
    weights = queries.astype(np.float64, copy=True)
    converged = np.zeros(p, bool)
    active = np.arange(p)
    for pivot in range(max_pivots + 1):
        if not len(active):
            break
        a_pts, a_costs, a_basis = points[active], costs[active], basis[active]
        dual = np.einsum("kn,knj->kj", np.take_along_axis(a_costs, a_basis, 1), inverse[active])
        reduced = a_costs - np.einsum("kmn,kn->km", a_pts, dual)
        improving = reduced < -COST_TOL
        done = ~improving.any(axis=1)
        converged[active[done]] = True
        if pivot == max_pivots:
            break
        keep = ~done
        active, a_pts, a_basis, rows = active[keep], a_pts[keep], a_basis[keep], np.arange(int(keep.sum()))
        reduced, improving = reduced[keep], improving[keep]
        if not len(active):
            break
        enter = reduced.argmin(axis=1) if pivot < bland_after else improving.argmax(axis=1)
        direction = np.einsum("kij,kj->ki", inverse[active], a_pts[rows, enter])
        x = np.maximum(weights[active], 0.0)
        ratio = np.where(direction > PIVOT_TOL, x / np.where(direction > PIVOT_TOL, direction, 1.0), np.inf)
        if pivot < bland_after:
            leave = ratio.argmin(axis=1)
        else:  # Bland: among the tied ratios, the basic point of smallest slot leaves
            tied = ratio <= ratio.min(axis=1, keepdims=True) + 1e-15
            leave = np.where(tied, a_basis, m).argmin(axis=1)
        a_basis[rows, leave] = enter
        basis[active] = a_basis
        matrix = np.take_along_axis(a_pts, a_basis[:, :, None], 1).transpose(0, 2, 1)  # columns: basic points
        inverse[active] = np.linalg.inv(matrix)
        weights[active] = np.einsum("kij,kj->ki", inverse[active], queries[active])
    matrix = np.take_along_axis(points, basis[:, :, None], 1).transpose(0, 2, 1)
    weights = np.maximum(np.linalg.solve(matrix, queries[:, :, None])[:, :, 0], 0.0)
    energy = (np.take_along_axis(costs, basis, 1) * weights).sum(axis=1)
    return energy, basis, weights, converged
