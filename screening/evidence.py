"""What a composition's chemistry says about whether it hosts a stable compound, before any
energy is predicted: how known compounds use its stoichiometry, its elements' roles and
analogous elements, whether it can be charge balanced, and where it sits among the stable
compounds of its sub-systems.

Every count is over known compounds *other than the composition itself* (a known composition
does not vote for itself), so the same features describe a known compound used for training
and an unknown candidate being screened.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from screening.composition import CompositionBatch
from screening.element_tables import magpie_table, metal_flags, pymatgen_ion_data
from screening.hull import ReferenceHull, chemical_systems, phase_summary
from screening.oxidation import neutral_assignments
from screening.row_lookup import RowCounter

RESOLUTION = 10_000  # atom fractions are compared at 1e-4
WIDTH = 4  # element positions described (candidates of up to 4 elements; a 5th is summarized)
ELEMENT_PROPERTIES = ("Electronegativity", "Column", "Row", "MendeleevNumber", "CovalentRadius")

FEATURES: tuple[str, ...] = (
    "n_elements",
    "atoms",
    "max_fraction",
    "min_fraction",
    "log_same_anonymous",
    "log_same_anonymous_by_electronegativity",
    "log_same_group_pattern",
    "log_same_group_row_pattern",
    "log_element_site_min",
    "log_element_site_mean",
    "charge_balanced",
    "charge_balanced_ordered",
    "all_metal",
    "sub_hull_energy",
    "sub_hull_phases",
    "sub_hull_min_phase_fraction",
    "sub_hull_elements",
    "log_sub_hull_compounds",
    "log_system_known",
    *(f"{p}_{j}" for j in range(WIDTH) for p in ("fraction", *ELEMENT_PROPERTIES)),
)


@dataclass(frozen=True)
class Placement:
    """Compositions placed on ``hull`` (:meth:`ReferenceHull.place`): energies, vertex ids, weights."""

    hull: ReferenceHull
    energy: np.ndarray
    vertices: np.ndarray
    weights: np.ndarray


@dataclass
class KnownCompounds:
    """The known compounds evidence is counted against (with their formation energies, for
    the hull of sub-systems)."""

    batch: CompositionBatch
    energy: np.ndarray
    hull_elements: frozenset[int] | None = None  # the sub-system hulls need only these elements (a screen's)

    def __post_init__(self):
        self._keys = {name: RowCounter(_keys(name, self.batch)) for name in _KEYS}
        self._composition = RowCounter(_composition_key(self.batch))
        self._sites = RowCounter(_site_keys(self.batch))
        self._systems = RowCounter(_padded(self.batch.z.astype(np.int64)))
        self._hulls: dict[int, ReferenceHull] = {}
        self._held_counts: dict[int, dict[tuple[int, ...], int]] = {}

    def features(self, batch: CompositionBatch, placed: Placement | None = None) -> np.ndarray:
        """``(len(batch), len(FEATURES))`` float64, columns as :data:`FEATURES`. ``placed``: the
        batch already placed on a hull of the same known compounds (see :meth:`_sub_hull_columns`)."""
        n = len(batch)
        fraction = batch.fraction
        itself = self._composition(_composition_key(batch)).astype(np.float64)  # 0 or 1
        columns = [
            batch.n_elements.astype(np.float64),
            _atoms(batch),
            fraction.max(axis=1),
            np.where(batch.mask, fraction, 1.0).min(axis=1),
        ]
        for name in _KEYS:
            columns.append(np.log1p(self._keys[name](_keys(name, batch)) - itself))
        site_rows, site_keys = _site_keys(batch, with_rows=True)
        site = np.log1p(self._sites(site_keys) - itself[site_rows])
        columns.append(_reduce_rows(site, site_rows, n, np.minimum, np.inf))
        columns.append(np.bincount(site_rows, site, n) / np.maximum(batch.n_elements, 1))
        columns += list(_charge_columns(batch))
        columns += list(self._sub_hull_columns(batch, placed))
        columns.append(np.log1p(self._systems(_padded(batch.z.astype(np.int64))) - itself))
        columns += list(_element_columns(batch))
        return np.column_stack(columns)

    def _sub_hull_columns(self, batch: CompositionBatch, placed: Placement | None = None):
        """Against the stable known compounds of the composition's proper sub-systems only (its
        own system's compounds are what is being predicted): the hull energy there, how many
        phases it splits into, the smallest phase's share, how many of them are pure elements,
        and how many compounds the sub-systems hold.

        A screen has already placed its candidates on the hull of the same known compounds
        (``placed``). Where that hull holds no stable compound of a candidate's own system, its
        points there are the sub-system hull's, in the same order, so the placement is the same
        computation and is taken from it instead of being repeated."""
        n = len(batch)
        energy, phases, smallest, elements, compounds = (np.zeros(n) for _ in range(5))
        arity = batch.n_elements
        to_place = np.ones(n, bool)
        if placed is not None:
            for system, rows in chemical_systems(batch).items():
                to_place[rows] = len(placed.hull.stable_rows.get(system, ())) > 0
            taken = np.flatnonzero(~to_place)
            summary = phase_summary(placed.energy[taken], placed.vertices[taken], placed.weights[taken])
            energy[taken], phases[taken], smallest[taken], elements[taken] = summary
        for k in np.unique(arity):
            rows = np.flatnonzero(arity == k)
            compounds[rows] = _sub_system_counts(self._held(int(k)), batch.select(rows))
            rows = rows[to_place[rows]]
            if len(rows):
                summary = self._sub_hull(int(k)).phase_summary(batch.select(rows))
                energy[rows], phases[rows], smallest[rows], elements[rows] = summary
        # The smallest phase's share is a ratio of small integers (1/20, 1/3), and the hull energy
        # one mixture of known energies, that the hull's arithmetic gives to +-1 ulp depending on
        # the path (qhull's planes and barycentric solve, or the simplex method) and the CPU's
        # LAPACK; trees fitted on such twins (0.05 and 0.05 - 1 ulp) split between them, so both
        # reach them rounded to 1e-9.
        return np.round(energy, 9), phases, np.round(smallest, 9), elements, np.log1p(compounds)

    def _held(self, arity: int) -> dict[tuple[int, ...], int]:
        """How many compounds (of 2+ elements) the sub-system hull of ``arity`` holds per system."""
        if arity not in self._held_counts:
            known = self._sub_hull(arity).batch
            self._held_counts[arity] = {s: len(r) for s, r in chemical_systems(known).items() if len(s) > 1}
        return self._held_counts[arity]

    def _sub_hull(self, arity: int) -> ReferenceHull:
        if arity not in self._hulls:
            fewer = self.batch.n_elements < arity
            if self.hull_elements is not None:
                fewer &= np.isin(self.batch.z, [0, *self.hull_elements]).all(axis=1)
            self._hulls[arity] = ReferenceHull(self.batch.select(fewer), self.energy[fewer])
        return self._hulls[arity]


def load_tables() -> None:
    """Read the element tables :meth:`KnownCompounds.features` uses (once per process)."""
    pymatgen_ion_data(), metal_flags(), magpie_table(ELEMENT_PROPERTIES), _group_table()


def _atoms(batch: CompositionBatch) -> np.ndarray:
    """Atoms per reduced formula unit (integer amounts; others count at 1e-4 resolution)."""
    amount = np.where(batch.mask, batch.amount, 0.0)
    integral = np.all(np.abs(amount - np.round(amount)) < 1e-8, axis=1)
    whole = np.round(np.where(integral[:, None], amount, batch.fraction * RESOLUTION)).astype(np.int64)
    return (whole.sum(axis=1) // np.gcd.reduce(whole, axis=1)).astype(np.float64)


def _fraction_ints(batch: CompositionBatch) -> np.ndarray:
    return np.where(batch.mask, np.round(batch.fraction * RESOLUTION), 0).astype(np.int64)


def _padded(a: np.ndarray) -> np.ndarray:
    return np.pad(a, ((0, 0), (0, max(0, 5 - a.shape[1]))))[:, :5]


def _order_by_electronegativity(batch: CompositionBatch) -> np.ndarray:
    chi = pymatgen_ion_data()[0]
    return np.argsort(np.where(batch.mask, chi[batch.z] * 1000 + batch.z, np.inf), axis=1, kind="stable")


def _group_table() -> np.ndarray:
    return magpie_table(("Column", "Row")).astype(np.int64)


def _keys(name: str, batch: CompositionBatch) -> np.ndarray:
    f = _fraction_ints(batch)
    if name == "anonymous":
        return _padded(-np.sort(-f, axis=1))
    if name == "anonymous_by_electronegativity":
        return _padded(np.take_along_axis(f, _order_by_electronegativity(batch), axis=1))
    groups = _group_table()[batch.z]
    code = groups[..., 0] * 100 + (groups[..., 1] if name == "group_row_pattern" else 0)
    return _padded(-np.sort(-np.where(batch.mask, code * (RESOLUTION + 1) + f, 0), axis=1))


_KEYS = ("anonymous", "anonymous_by_electronegativity", "group_pattern", "group_row_pattern")


def _composition_key(batch: CompositionBatch) -> np.ndarray:
    return np.hstack([_padded(batch.z.astype(np.int64)), _padded(_fraction_ints(batch))])


def _site_keys(batch: CompositionBatch, with_rows: bool = False):
    """(element, its atom fraction, number of elements) of every element of every row."""
    rows, cols = np.nonzero(batch.mask)
    keys = np.column_stack(
        [batch.z[rows, cols].astype(np.int64), _fraction_ints(batch)[rows, cols], batch.n_elements[rows]]
    )
    return (rows, keys) if with_rows else keys


def _reduce_rows(values: np.ndarray, rows: np.ndarray, n: int, ufunc, initial: float) -> np.ndarray:
    out = np.full(n, initial)
    ufunc.at(out, rows, values)
    return np.where(np.isfinite(out), out, 0.0)


def _charge_columns(batch: CompositionBatch):

    chi, states, n_states = pymatgen_ion_data()
    balanced, ordered = neutral_assignments(batch.z, batch.amount, states, n_states, chi)
    metal = (metal_flags()[batch.z] | ~batch.mask).all(axis=1)
    return balanced.astype(np.float64), ordered.astype(np.float64), metal.astype(np.float64)


def _element_columns(batch: CompositionBatch):
    """Atom fraction and properties of each element, elements by increasing electronegativity
    (the cation-like first), zeros past the last element."""
    order = _order_by_electronegativity(batch)[:, :WIDTH]
    z = np.take_along_axis(batch.z, order, axis=1).astype(np.int64)
    present = z > 0
    fraction = np.where(present, np.take_along_axis(batch.fraction, order, axis=1), 0.0)
    table = magpie_table(ELEMENT_PROPERTIES)
    z = np.pad(z, ((0, 0), (0, WIDTH - z.shape[1])))
    fraction = np.pad(fraction, ((0, 0), (0, WIDTH - fraction.shape[1])))
    for j in range(WIDTH):
        yield fraction[:, j]
        for p in range(len(ELEMENT_PROPERTIES)):
            yield table[z[:, j], p]


def _sub_system_counts(held: dict[tuple[int, ...], int], batch: CompositionBatch) -> np.ndarray:
    """Known compounds (of fewer elements, ``held`` per system) inside each row's chemical system."""
    from itertools import combinations

    counts = np.zeros(len(batch))
    for system, rows in chemical_systems(batch).items():
        counts[rows] = sum(held.get(s, 0) for k in range(2, len(system)) for s in combinations(system, k))
    return counts
