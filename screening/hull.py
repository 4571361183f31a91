"""Energies above the lower convex hull of formation energy per atom, per chemical system.

Systems are processed one arity at a time, from small to large. A system's hull is built from
its elements (at 0 eV/atom), the compounds that are stable in its proper sub-systems (a compound
above the hull of its own sub-system can never be a vertex of a larger hull), and its own
compounds. The hull energy at a composition is the cheapest mixture of those points with that
composition (a linear programme); its optimal basis is the decomposition, as in pymatgen's
``PhaseDiagram.get_decomp_and_e_above_hull``. Most systems of real data are small, so all
systems of one arity are solved together (:mod:`screening.hull_solve`): by a vectorized simplex
method, or, for a system with many points and many queries (a screened system with thousands of
candidates), by one qhull call, where the hull energy is the maximum over the lower facets' planes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np

from screening.composition import CompositionBatch
from screening.decomposition_text import decomposition_strings
from screening.hull_solve import hull_energies, plane_energies

STABLE_TOL = 1e-9  # eV/atom: at or below this above the hull, a compound counts as on it


@dataclass
class HullResult:
    """Per input row: energy above the hull (eV/atom, >= 0 up to rounding), whether it is a
    hull vertex or on the hull, and its decomposition as ``(row indices, atom fractions)``
    where negative indices ``-z`` denote the pure element of atomic number ``z``."""

    e_above_hull: np.ndarray
    stable: np.ndarray
    decomposition: list[tuple[np.ndarray, np.ndarray]]

    def decomposition_strings(self, formulas) -> list[str]:
        return decomposition_strings(self.decomposition, formulas)


def phase_summary(
    energy: np.ndarray, vertices: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`ReferenceHull.phase_summary` of placements already made (:meth:`ReferenceHull.place`)."""
    keep = weights > 1e-9
    share = np.where(keep, weights, 0.0) / np.where(keep, weights, 0.0).sum(axis=1, keepdims=True)
    smallest = np.where(keep, share, np.inf).min(axis=1)
    return (
        energy,
        keep.sum(axis=1).astype(np.float64),
        smallest,
        (keep & (vertices < 0)).sum(axis=1).astype(np.float64),
    )


def restrict(batch: CompositionBatch, energy: np.ndarray, elements) -> tuple[CompositionBatch, np.ndarray]:
    """The compounds made only of ``elements`` (atomic numbers): all a hull over them needs."""
    inside = np.isin(batch.z, [0, *elements]).all(axis=1)
    return batch.select(inside), energy[inside]


def chemical_systems(batch: CompositionBatch) -> dict[tuple[int, ...], np.ndarray]:
    """Rows of the batch grouped by their set of elements (sorted atomic numbers), systems in
    order of first appearance, rows ascending."""
    z = batch.z.astype(np.int64)
    if z.shape[1] > 9:  # a row of up to 9 elements packs into one int64 key (7 bits each)
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, zs in enumerate(z.tolist()):
            groups[tuple(v for v in zs if v)].append(i)
        return {k: np.array(v, np.int64) for k, v in groups.items()}
    key = z @ (np.int64(128) ** np.arange(z.shape[1], dtype=np.int64))
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    rows = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    return {tuple(v for v in z[first[g]].tolist() if v): rows[g] for g in np.argsort(first)}


def hull_distances(batch: CompositionBatch, energy: np.ndarray) -> HullResult:
    """Energy above the hull for every row of ``batch`` (formation energies per atom in
    ``energy``) against all rows together plus the elements at 0."""
    return ReferenceHull(batch, energy).result


class ReferenceHull:
    """The hull of a set of compounds (plus the elements at 0): their own distances to it in
    ``result``, and :meth:`energy_at` to place other compositions against it."""

    def __init__(self, batch: CompositionBatch, energy: np.ndarray, decompositions: bool = True, threads: int = 1):
        """``decompositions=False``: a hull only to place other compositions against
        (``result.decomposition`` is left empty; 70k Python tuples fewer to build and ship).
        ``threads``: qhull calls of the build at once (qhull releases the interpreter lock; a
        screen's combined hull, 1,800 calls: 1.2 s -> ~0.7 s of them on 2 threads)."""
        energy = np.asarray(energy, np.float64)
        if energy.shape != (len(batch),):
            raise ValueError(
                f"need one energy per composition: {len(batch)} compositions, energies of shape {energy.shape}"
            )
        if not np.isfinite(energy).all():
            bad = int(np.flatnonzero(~np.isfinite(energy))[0])
            raise ValueError(f"energy of row {bad} ({batch.formula[bad]}) is {energy[bad]}, not a finite number")
        self.batch, self.energy, self._fraction = batch, energy, batch.fraction
        e_above = np.full(len(batch), np.nan)
        stable = np.zeros(len(batch), bool)
        decomposition: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0, np.int64), np.zeros(0))] * len(batch)
        self.stable_rows: dict[tuple[int, ...], np.ndarray] = {}
        # the lower facets of the systems built by qhull: their hull is the same for other compositions
        self.planes: dict[tuple[int, ...], np.ndarray] = {}
        # One arity at a time: a system's hull needs the stable compounds of its sub-systems.
        for level in _by_arity(chemical_systems(batch)).values():
            own, systems, planes = list(level.values()), list(level), {}
            point_ids = [np.concatenate([self._point_ids(s, proper_only=True), r]) for s, r in level.items()]
            hull_e, vertices, weights = self._solve(
                systems, point_ids, batch, self._fraction, own, threads, planes=planes
            )
            self.planes.update((systems[j], equations) for j, equations in planes.items())
            rows = np.concatenate(own)
            e_above[rows] = energy[rows] - hull_e
            on_hull = e_above[rows] <= STABLE_TOL
            stable[rows] = on_hull
            for r, s, v, w in zip(rows.tolist(), on_hull.tolist(), vertices, weights) if decompositions else ():
                decomposition[r] = (np.array([r]), np.array([1.0])) if s else _mixture(v, w)
            for system, r in level.items():
                self.stable_rows[system] = r[stable[r]]
        self.result = HullResult(e_above, stable, decomposition if decompositions else [])

    def _point_ids(self, system: tuple[int, ...], proper_only: bool = False) -> np.ndarray:
        """Hull points of a system: its elements (ids ``-z``, in the system's order) and the
        stable compounds of its sub-systems (and of itself unless ``proper_only``)."""
        stable = self.stable_rows
        return np.concatenate(
            [-np.array(system, np.int64)] + [stable[s] for s in _subsystems(system, proper_only) if s in stable]
        )

    def energy_at(
        self, batch: CompositionBatch, decompositions: bool = True
    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """Hull energy (eV/atom) at each composition of ``batch`` and its decomposition into
        reference rows (negative ids: pure elements), the compositions themselves excluded
        (an empty list if not ``decompositions``)."""
        hull_e, ids, weights = self.place(batch)
        if not decompositions:
            return hull_e, []
        return hull_e, [_mixture(v, w) for v, w in zip(ids, weights)]

    def energies_at(self, batch: CompositionBatch) -> np.ndarray:
        """:meth:`energy_at` without decompositions: the hull energy at each composition of
        ``batch``, from the lower facets the build kept where it has them (:attr:`planes`: a
        screen's combined hull keeps those of the ~30% of its systems it built with qhull, and
        each system's hull is the same for its other compositions), else from a hull built now."""
        hull_e = np.empty(len(batch))
        fraction = batch.fraction
        for level in _by_arity(chemical_systems(batch)).values():
            built = {s: rows for s, rows in level.items() if s not in self.planes}
            for system, rows in level.items():
                if system not in built:
                    query = _query_columns(batch, fraction, rows, np.array([system], np.int64))
                    hull_e[rows] = plane_energies(self.planes[system], query).max(axis=1)
            if built:
                queries = list(built.values())
                energies, _, _ = self._solve(
                    list(built), [self._point_ids(s) for s in built], batch, fraction, queries, energies_only=True
                )
                hull_e[np.concatenate(queries)] = energies
        return hull_e

    def place(self, batch: CompositionBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hull energy at each composition of ``batch`` and its decomposition as padded arrays:
        reference ids (negative: pure elements) and weights, ``(len(batch), width)``, weight 0
        at padding and at unused vertices (see :func:`screening.decomposition_text.mixture_strings`)."""
        hull_e = np.empty(len(batch))
        width = max(int(batch.n_elements.max(initial=1)), 1)
        ids = np.zeros((len(batch), width), np.int64)
        weights = np.zeros((len(batch), width))
        fraction = batch.fraction
        for level in _by_arity(chemical_systems(batch)).values():
            queries = list(level.values())
            energies, vertices, w = self._solve(
                list(level), [self._point_ids(s) for s in level], batch, fraction, queries
            )
            rows = np.concatenate(queries)
            hull_e[rows] = energies
            ids[rows, : vertices.shape[1]], weights[rows, : w.shape[1]] = vertices, w
        return hull_e, ids, weights

    def phase_summary(self, batch: CompositionBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per composition, without building decompositions one by one: the hull energy, the
        number of phases it splits into, the smallest phase's atom fraction, and how many of
        the phases are pure elements (:func:`phase_summary` of :meth:`place`)."""
        return phase_summary(*self.place(batch))

    def _compositions(self, ids: np.ndarray, system_z: np.ndarray) -> np.ndarray:
        """Atom fractions of points (row ids; ``-z`` the element) in their systems' columns."""
        n = system_z.shape[1]
        element = ids < 0
        z, f = np.zeros((len(ids), n), np.int64), np.zeros((len(ids), n))
        z[element, 0], f[element, 0] = -ids[element], 1.0
        z[~element] = _pad_columns(self.batch.z[ids[~element]], n)
        f[~element] = _pad_columns(self._fraction[ids[~element]], n)
        return _columns(z, f, system_z)

    def _solve(
        self, systems, point_ids, query_batch, query_fraction, query_rows, threads: int = 1, **options
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hull energy at the queries ``query_rows[j]`` (rows of ``query_batch``) of every system
        ``systems[j]`` (all of one arity) over the points ``point_ids[j]``. Returns the energies
        and, per query, the point ids and weights of its decomposition (concatenated order);
        ``options`` as :func:`screening.hull_solve.hull_energies` takes them."""
        n = len(systems[0])
        system_z = np.array(systems, np.int64)
        n_points = np.array([len(p) for p in point_ids])
        n_queries = np.array([len(q) for q in query_rows])
        ids = np.concatenate(point_ids)
        point_system = np.repeat(np.arange(len(systems)), n_points)
        comp = self._compositions(ids, system_z[point_system])
        e = np.zeros(len(ids))
        e[ids >= 0] = self.energy[ids[ids >= 0]]
        rows = np.concatenate(query_rows)
        query_system = np.repeat(np.arange(len(systems)), n_queries)
        query = _query_columns(query_batch, query_fraction, rows, system_z[query_system])
        hull_e, vertices, weights = hull_energies(n, comp, e, n_points, query, n_queries, threads, **options)
        return hull_e, ids[vertices], weights


def _by_arity(systems: dict[tuple[int, ...], np.ndarray]) -> dict[int, dict[tuple[int, ...], np.ndarray]]:
    levels: dict[int, dict[tuple[int, ...], np.ndarray]] = defaultdict(dict)
    for system, rows in systems.items():
        levels[len(system)][system] = rows
    return {n: levels[n] for n in sorted(levels)}


def _mixture(vertices: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = weights > 1e-9
    return vertices[keep], weights[keep] / weights[keep].sum()


@lru_cache(maxsize=65536)
def _subsystems(system: tuple[int, ...], proper_only: bool) -> tuple[tuple[int, ...], ...]:
    top = len(system) - 1 if proper_only else len(system)
    return tuple(s for k in range(1, top + 1) for s in combinations(system, k))


def _pad_columns(a: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` slots of padded rows (a member of an ``n``-element system has at most
    ``n`` elements), zero-padded if the batch is narrower."""
    return a[:, :n] if a.shape[1] >= n else np.pad(a, ((0, 0), (0, n - a.shape[1])))


def _query_columns(batch: CompositionBatch, fraction: np.ndarray, rows: np.ndarray, system_z: np.ndarray) -> np.ndarray:
    """Atom fractions of ``batch``'s ``rows`` in the columns of their systems (``system_z``: one
    row per query, or one for all)."""
    n = system_z.shape[1]
    return _columns(_pad_columns(batch.z[rows], n).astype(np.int64), _pad_columns(fraction[rows], n), system_z)


def _columns(z: np.ndarray, fraction: np.ndarray, system_z: np.ndarray) -> np.ndarray:
    """Atom fractions (slots ``z``, ``fraction``) as columns in the order of each row's system."""
    return (fraction[:, :, None] * (z[:, :, None] == system_z[:, None, :])).sum(axis=1)
