"""The hull energy at many compositions of many chemical systems of one arity: each system's
points (its elements first) and queries in consecutive rows. Small systems go through the
batched simplex method (:mod:`screening.hull_lp`), a system with many points and queries (a
screened system with thousands of candidates) through one qhull call, where the hull energy is
the maximum over the lower facets' planes; a linear programme (HiGHS) is the exact fallback.
:class:`screening.hull.ReferenceHull` decides which points each system has.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog
from scipy.spatial import ConvexHull, QhullError

from screening.hull_lp import PADDING_COST, simplex_batch

QHULL_MAX_ELEMENTS = 5  # qhull only up to this many elements (its cost grows fast beyond)
# queries x points x elements of a system up to which the batched simplex beats a qhull call (measured: bench/hull.py
# and the 1M ranking)
SIMPLEX_MAX_WORK = 2_000
VERTICAL_TOL = 1e-7  # energy component of a unit facet normal below which the facet is vertical


def hull_energies(
    n, comp, e, n_points, query, n_queries, threads: int = 1, energies_only: bool = False, planes: dict | None = None
):
    """Hull energies at the queries of many systems of ``n`` elements. Points of system ``j``
    are the ``n_points[j]`` consecutive rows of ``comp, e`` (its elements first), its queries the
    ``n_queries[j]`` consecutive rows of ``query``. Small systems go through the batched simplex
    method, large ones (many points and queries, up to 5 elements) through qhull. Returns the
    energies and, per query, ``n`` indices into ``comp`` and their weights (zeros for the queries
    of qhull's systems if ``energies_only``: no decompositions asked for, none computed).
    ``planes``: where given, ``planes[j]`` is set to the lower facets' equations (qhull's) of
    every system ``j`` solved by qhull, for :func:`plane_energies`."""
    point_start = np.r_[0, np.cumsum(n_points)]
    query_start = np.r_[0, np.cumsum(n_queries)]
    hull_e = np.empty(len(query))
    vertices = np.zeros((len(query), n), np.int64)
    weights = np.zeros((len(query), n))
    large = (n_queries * n_points * n > SIMPLEX_MAX_WORK) & (2 <= n <= QHULL_MAX_ELEMENTS)
    simplex = ~large

    def by_qhull(systems: np.ndarray) -> None:  # each system writes only its own rows
        for j in systems:
            p, q = slice(point_start[j], point_start[j + 1]), slice(query_start[j], query_start[j + 1])
            try:
                if energies_only:
                    equations = lower_facets(comp[p], e[p])
                    hull_e[q] = plane_energies(equations, query[q]).max(axis=1)
                else:
                    hull_e[q], v, weights[q], equations = _qhull(comp[p], e[p], query[q])
                    vertices[q] = v + point_start[j]
            except (QhullError, np.linalg.LinAlgError):  # degenerate point sets: the simplex method is exact anyway
                simplex[j] = True
                continue
            if planes is not None:
                planes[j] = equations

    qhull_systems = np.flatnonzero(large)
    if threads > 1 and len(qhull_systems) >= 8 * threads:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(by_qhull, [qhull_systems[k::threads] for k in range(threads)]))
    else:
        by_qhull(qhull_systems)
    # Systems of similar size share one padded batch.
    bucket = np.ceil(np.log(n_points) / np.log(1.25)).astype(np.int64)
    point_system = np.repeat(np.arange(len(n_points)), n_points)
    query_system = np.repeat(np.arange(len(n_queries)), n_queries)
    for b in np.unique(bucket[simplex]):
        members = np.flatnonzero(simplex & (bucket == b))
        local = np.full(len(n_points), -1)
        local[members] = np.arange(len(members))
        width = int(n_points[members].max())
        points = np.zeros((len(members), width, n))
        costs = np.full((len(members), width), PADDING_COST)
        at = np.flatnonzero(local[point_system] >= 0)
        slot = at - point_start[point_system[at]]
        points[local[point_system[at]], slot] = comp[at]
        costs[local[point_system[at]], slot] = e[at]
        asked = np.flatnonzero(local[query_system] >= 0)
        owner = local[query_system[asked]]
        energy, basis, w, converged = simplex_batch(points[owner], costs[owner], query[asked])
        hull_e[asked], vertices[asked], weights[asked] = energy, basis + point_start[query_system[asked]][:, None], w
        for k in np.flatnonzero(~converged):  # never seen on real data; the exact fallback
            j = query_system[asked[k]]
            p = slice(point_start[j], point_start[j + 1])
            hull_e[asked[k]], v, weights[asked[k]] = _linprog(comp[p], e[p], query[asked[k]])
            vertices[asked[k]] = v + point_start[j]
    return hull_e, vertices, weights


def lower_facets(comp: np.ndarray, e: np.ndarray) -> np.ndarray:
    """qhull's equations (normal, then offset) of the lower facets of the points ``comp, e``
    (one system's atom fractions in its columns, energies): their planes' maximum at a
    composition is the hull energy there (:func:`plane_energies`)."""
    hull = _convex_hull(comp, e)
    return hull.equations[_lower(hull, comp.shape[1])]


def plane_energies(equations: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The energy of each plane (lower facets' ``equations``) at each composition of ``query``
    (a system's atom fractions in its columns): ``(queries, planes)``."""
    n = query.shape[1]
    return -(query[:, : n - 1] @ equations[:, : n - 1].T + equations[:, n]) / equations[:, n - 1]


def _convex_hull(comp: np.ndarray, e: np.ndarray) -> ConvexHull:
    n = comp.shape[1]
    # One point far above the centroid makes the set full-dimensional whatever the energies.
    apex = np.append(np.full(n - 1, 1.0 / n), e.max() + 1e3)
    return ConvexHull(np.vstack([np.column_stack([comp[:, : n - 1], e]), apex]), qhull_options="Qt")


def _lower(hull: ConvexHull, n: int) -> np.ndarray:
    # Lower facets face down. A (numerically) vertical facet is not one: its plane says nothing
    # about energies and its projection onto compositions is degenerate.
    return np.flatnonzero(hull.equations[:, n - 1] < -VERTICAL_TOL)


def _qhull(comp: np.ndarray, e: np.ndarray, query: np.ndarray):
    """Hull energies at ``query``, their decompositions (``n`` point indices and weights) and the
    lower facets' equations."""
    hull = _convex_hull(comp, e)
    lower = _lower(hull, comp.shape[1])
    try:
        return (*_lower_hull_at(comp, hull, lower, query), hull.equations[lower])
    except np.linalg.LinAlgError:
        pass
    # Qt triangulates non-simplicial facets and may leave flat simplices (their vertices'
    # compositions are dependent): they cover no composition, so drop them and try again.
    flat = np.abs(np.linalg.det(comp[hull.simplices[lower]])) <= 1e-12  # lower facets never hold the apex
    return (*_lower_hull_at(comp, hull, lower[~flat], query), hull.equations[lower])


def _lower_hull_at(comp: np.ndarray, hull, lower: np.ndarray, query: np.ndarray):
    """Hull energy at ``query`` from the lower facets ``lower``, and the barycentric
    decomposition of each query in its facet; LinAlgError if a facet is flat or a weight
    comes out negative (a flat facet that happened not to be exactly singular)."""
    planes = plane_energies(hull.equations[lower], query)  # (queries, lower facets)
    best = planes.argmax(axis=1)
    hull_e = planes[np.arange(len(query)), best]
    vertices = hull.simplices[lower][best]  # (queries, n)
    # Barycentric weights of every query in its facet, one batched solve (rows of comp sum to 1).
    weights = np.linalg.solve(comp[vertices].transpose(0, 2, 1), query[:, :, None])[:, :, 0]
    if not np.isfinite(weights).all() or (weights < -1e-6).any():
        raise np.linalg.LinAlgError("degenerate facet")
    return hull_e, vertices, np.maximum(weights, 0.0)


def _linprog(comp: np.ndarray, e: np.ndarray, query: np.ndarray):
    """The exact linear programme at one composition (HiGHS): energy, ``n`` point indices and
    weights (a vertex solution has at most ``n`` non-zero weights)."""
    n = comp.shape[1]
    candidates = _lowest_per_composition(comp, e)
    result = linprog(e[candidates], A_eq=comp[candidates].T, b_eq=query, bounds=(0, None), method="highs")
    if not result.success:
        raise RuntimeError(f"hull linear programme failed: {result.message}")
    top = np.argsort(-result.x, kind="stable")[:n]
    vertices, weights = np.zeros(n, np.int64), np.zeros(n)
    vertices[: len(top)], weights[: len(top)] = candidates[top], result.x[top]
    return result.fun, vertices, weights


def _lowest_per_composition(comp: np.ndarray, e: np.ndarray) -> np.ndarray:
    key = np.round(comp, 12)
    order = np.lexsort((e, *key.T[::-1]))
    first = np.r_[True, (np.diff(key[order], axis=0) != 0).any(axis=1)]
    return order[first]
