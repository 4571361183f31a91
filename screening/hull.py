"""Energies above the lower convex hull of formation energy per atom, per chemical system.

Systems are processed from small to large. A system's hull is built from its elements (at 0
eV/atom), the compounds that are stable in its proper sub-systems (a compound above the hull of
its own sub-system can never be a vertex of a larger hull), and its own compounds. Up to
:data:`QHULL_MAX_ELEMENTS` elements the hull comes from qhull: the hull energy at a
composition is the maximum over the lower facets' planes (a convex function is the maximum of
its supporting planes). Larger systems solve one small linear programme per compound. Either
way the decomposition is the set of hull vertices whose mixture, with non-negative atom
fractions, has the compound's composition and the hull's energy, as in pymatgen's
``PhaseDiagram.get_decomp_and_e_above_hull``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np
from scipy.optimize import linprog
from scipy.spatial import ConvexHull, QhullError

from screening.composition import CompositionBatch
from screening.elements import SYMBOLS

QHULL_MAX_ELEMENTS = 5  # beyond, a linear programme per compound is faster than qhull here
STABLE_TOL = 1e-9  # eV/atom: at or below this above the hull, a compound counts as on it
VERTICAL_TOL = 1e-7  # energy component of a unit facet normal below which the facet is vertical


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


def decomposition_strings(decomposition, formulas, digits: int = 6) -> list[str]:
    """``"Li2O:0.6 + MnO:0.4"`` per decomposition: atom fractions to ``digits`` significant
    digits, largest first; row ``r`` named ``formulas[r]``, negative ids by element symbol."""
    return [
        " + ".join(f"{SYMBOLS[-r - 1] if r < 0 else formulas[r]}:{f:.{digits}g}"
                   for r, f in sorted(zip(rows.tolist(), fractions.tolist()), key=lambda t: -t[1]))  # fmt: skip
        for rows, fractions in decomposition
    ]


def restrict(batch: CompositionBatch, energy: np.ndarray, elements) -> tuple[CompositionBatch, np.ndarray]:
    """The compounds made only of ``elements`` (atomic numbers): all a hull over them needs."""
    inside = np.isin(batch.z, [0, *elements]).all(axis=1)
    return batch.select(inside), energy[inside]


def chemical_systems(batch: CompositionBatch) -> dict[tuple[int, ...], np.ndarray]:
    """Rows of the batch grouped by their set of elements (sorted atomic numbers)."""
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, zs in enumerate(batch.z.tolist()):
        groups[tuple(z for z in zs if z)].append(i)
    return {k: np.array(v, np.int64) for k, v in groups.items()}


def hull_distances(batch: CompositionBatch, energy: np.ndarray) -> HullResult:
    """Energy above the hull for every row of ``batch`` (formation energies per atom in
    ``energy``) against all rows together plus the elements at 0."""
    return ReferenceHull(batch, energy).result


class ReferenceHull:
    """The hull of a set of compounds (plus the elements at 0): their own distances to it in
    ``result``, and :meth:`energy_at` to place other compositions against it."""

    def __init__(self, batch: CompositionBatch, energy: np.ndarray):
        energy = np.asarray(energy, np.float64)
        if energy.shape != (len(batch),):
            raise ValueError(f"need one energy per composition: {len(batch)} compositions, energies of shape {energy.shape}")
        if not np.isfinite(energy).all():
            bad = int(np.flatnonzero(~np.isfinite(energy))[0])
            raise ValueError(f"energy of row {bad} ({batch.formula[bad]}) is {energy[bad]}, not a finite number")
        self.batch, self.energy, self._fraction = batch, energy, batch.fraction
        e_above = np.full(len(batch), np.nan)
        stable = np.zeros(len(batch), bool)
        decomposition: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0, np.int64), np.zeros(0))] * len(batch)
        systems = chemical_systems(batch)
        self.stable_rows: dict[tuple[int, ...], np.ndarray] = {}
        for system in sorted(systems, key=len):
            rows = systems[system]
            ids, comp, e = self._points(system, proper_only=True)
            own = _compositions(batch, self._fraction, rows, system)
            hull_e, decomp = _hull_energy(np.vstack([comp, own]), np.concatenate([e, energy[rows]]), own)
            ids = np.concatenate([ids, rows])
            e_above[rows] = energy[rows] - hull_e
            on_hull = e_above[rows] <= STABLE_TOL
            stable[rows] = on_hull
            for r, (vertices, weights), s in zip(rows, decomp, on_hull):
                decomposition[r] = (np.array([r]), np.array([1.0])) if s else (ids[vertices], weights)
            self.stable_rows[system] = rows[on_hull]
        self.result = HullResult(e_above, stable, decomposition)

    def _points(self, system: tuple[int, ...], proper_only: bool = False):
        """Hull points of a system: its elements (ids ``-z``) and the stable compounds of its
        sub-systems (and of itself unless ``proper_only``)."""
        stable = self.stable_rows
        sub = [stable[s] for s in _subsystems(system, proper_only) if s in stable]
        rows = np.concatenate(sub) if sub else np.zeros(0, np.int64)
        ids = np.concatenate([-np.array(system, np.int64), rows])
        comp = np.vstack([np.eye(len(system)), _compositions(self.batch, self._fraction, rows, system)])
        return ids, comp, np.concatenate([np.zeros(len(system)), self.energy[rows]])

    def energy_at(self, batch: CompositionBatch) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """Hull energy (eV/atom) at each composition of ``batch`` and its decomposition into
        reference rows (negative ids: pure elements), the compositions themselves excluded."""
        hull_e = np.empty(len(batch))
        decomposition: list[tuple[np.ndarray, np.ndarray]] = [None] * len(batch)  # type: ignore[list-item]
        fraction = batch.fraction
        for system, rows in chemical_systems(batch).items():
            ids, comp, e = self._points(system)
            query = _compositions(batch, fraction, rows, system)
            energies, decomp = _hull_energy(comp, e, query)
            hull_e[rows] = energies
            for r, (vertices, weights) in zip(rows, decomp):
                decomposition[r] = (ids[vertices], weights)
        return hull_e, decomposition


@lru_cache(maxsize=65536)
def _subsystems(system: tuple[int, ...], proper_only: bool) -> tuple[tuple[int, ...], ...]:
    top = len(system) - 1 if proper_only else len(system)
    return tuple(s for k in range(1, top + 1) for s in combinations(system, k))


def _compositions(batch: CompositionBatch, fraction: np.ndarray, rows: np.ndarray, system: tuple[int, ...]) -> np.ndarray:
    """Atom fractions of ``rows`` as columns in the order of ``system``."""
    out = np.zeros((len(rows), len(system)))
    if len(rows):
        column = np.full(max(system) + 1, -1)
        column[list(system)] = np.arange(len(system))
        z, f = batch.z[rows], fraction[rows]
        r, slot = np.nonzero(z)
        out[r, column[z[r, slot]]] = f[r, slot]
    return out


def _hull_energy(comp: np.ndarray, e: np.ndarray, query: np.ndarray):
    """Hull energy of the points ``comp, e`` at the compositions ``query`` and the
    decomposition of each (indices into ``comp`` and atom fractions)."""
    n = comp.shape[1]
    if n == 1:
        best = int(np.argmin(e))
        return np.full(len(query), e[best]), [(np.array([best]), np.array([1.0]))] * len(query)
    if n <= QHULL_MAX_ELEMENTS:
        try:
            return _qhull(comp, e, query)
        except (QhullError, np.linalg.LinAlgError):  # degenerate point sets: the linear programme is exact anyway
            pass
    return _linprog(comp, e, query)


def _qhull(comp: np.ndarray, e: np.ndarray, query: np.ndarray):
    n = comp.shape[1]
    # One point far above the centroid makes the set full-dimensional whatever the energies.
    apex = np.append(np.full(n - 1, 1.0 / n), e.max() + 1e3)
    points = np.vstack([np.column_stack([comp[:, : n - 1], e]), apex])
    hull = ConvexHull(points, qhull_options="Qt")
    # Lower facets face down. A (numerically) vertical facet is not one: its plane says nothing
    # about energies and its projection onto compositions is degenerate.
    lower = np.flatnonzero(hull.equations[:, n - 1] < -VERTICAL_TOL)
    try:
        return _lower_hull_at(comp, hull, lower, query)
    except np.linalg.LinAlgError:
        pass
    # Qt triangulates non-simplicial facets and may leave flat simplices (their vertices'
    # compositions are dependent): they cover no composition, so drop them and try again.
    lower = lower[np.abs(np.linalg.det(comp[hull.simplices[lower]])) > 1e-12]  # lower facets never hold the apex
    return _lower_hull_at(comp, hull, lower, query)


def _lower_hull_at(comp: np.ndarray, hull, lower: np.ndarray, query: np.ndarray):
    """Hull energy at ``query`` from the lower facets ``lower``, and the barycentric
    decomposition of each query in its facet; LinAlgError if a facet is flat or a weight
    comes out negative (a flat facet that happened not to be exactly singular)."""
    n = comp.shape[1]
    eq, simplices = hull.equations[lower], hull.simplices[lower]
    normal, slope, offset = eq[:, : n - 1], eq[:, n - 1], eq[:, n]
    planes = -(query[:, : n - 1] @ normal.T + offset) / slope  # (queries, lower facets)
    best = planes.argmax(axis=1)
    hull_e = planes[np.arange(len(query)), best]
    vertices = simplices[best]  # (queries, n)
    # Barycentric weights of every query in its facet, one batched solve (rows of comp sum to 1).
    weights = np.linalg.solve(comp[vertices].transpose(0, 2, 1), query[:, :, None])[:, :, 0]
    if not np.isfinite(weights).all() or (weights < -1e-6).any():
        raise np.linalg.LinAlgError("degenerate facet")
    keep = weights > 1e-9
    decomp = [(v[k], w[k] / w[k].sum()) for v, w, k in zip(vertices, weights, keep)]
    return hull_e, decomp


def _linprog(comp: np.ndarray, e: np.ndarray, query: np.ndarray):
    candidates = _lowest_per_composition(comp, e)
    hull_e, decomp = np.empty(len(query)), []
    for i, q in enumerate(query):
        result = linprog(e[candidates], A_eq=comp[candidates].T, b_eq=q, bounds=(0, None), method="highs")
        if not result.success:
            raise RuntimeError(f"hull linear programme failed: {result.message}")
        hull_e[i] = result.fun
        keep = result.x > 1e-9
        decomp.append((candidates[keep], result.x[keep] / result.x[keep].sum()))
    return hull_e, decomp


def _lowest_per_composition(comp: np.ndarray, e: np.ndarray) -> np.ndarray:
    key = np.round(comp, 12)
    order = np.lexsort((e, *key.T[::-1]))
    first = np.r_[True, (np.diff(key[order], axis=0) != 0).any(axis=1)]
    return order[first]
