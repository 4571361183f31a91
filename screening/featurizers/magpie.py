"""The 145 "physical attributes" of the ElemNet/IRNet preprocessing, vectorized.

Exactly matminer's ``Stoichiometry()`` (6) + ``ElementProperty.from_preset("magpie")`` (132) +
``ValenceOrbital(props=["avg"])`` (4) + ``IonProperty(fast=True)`` (3), with the same labels in
the same order and the same definitions:

* statistics are weighted by the amounts as written (matminer uses
  ``comp.element_composition``); ``mean`` is ``np.average``; ``avg_dev`` the weighted mean
  absolute deviation from the weighted mean; ``mode`` the smallest property value among the
  elements whose amount ``np.isclose``-equals the largest amount;
* ``compound possible`` is true when one oxidation state per element (pymatgen's common
  oxidation states) gives a charge sum ``np.isclose`` to zero; single elements are possible;
* ``avg ionic char`` sums ``x_i x_j (1 - exp(-(X_i - X_j)^2 / 4))`` over element pairs.
"""

from __future__ import annotations

import numpy as np

from screening.composition import CompositionBatch
from screening.element_tables import magpie_table, pymatgen_ion_data
from screening.featurizers.base import CompositionFeaturizer
from screening.oxidation import neutral_assignment_exists

MAGPIE_PROPERTIES = tuple(
    """
    Number MendeleevNumber AtomicWeight MeltingT Column Row
    CovalentRadius Electronegativity NsValence NpValence NdValence
    NfValence NValence NsUnfilled NpUnfilled NdUnfilled NfUnfilled
    NUnfilled GSvolume_pa GSbandgap GSmagmom SpaceGroupNumber
    """.split()
)
MAGPIE_STATS = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")
P_NORMS = (2, 3, 5, 7, 10)
ORBITALS = ("s", "p", "d", "f")
_VALENCE_COLUMNS = [MAGPIE_PROPERTIES.index(f"N{o}Valence") for o in ORBITALS]
_ISCLOSE_RTOL, _ISCLOSE_ATOL = 1e-5, 1e-8  # numpy.isclose defaults, as matminer uses them (mode)
_MAX_COMBINATIONS = 2048  # oxidation-state combinations per row expanded in one array

_CITATION = (
    "@article{ward_agrawal_choudary_wolverton_2016, title={A general-purpose machine learning "
    "framework for predicting properties of inorganic materials}, volume={2}, "
    "DOI={10.1038/npjcompumats.2017.28}, number={1}, journal={npj Computational Materials}, "
    "author={Ward, Logan and Agrawal, Ankit and Choudhary, Alok and Wolverton, Christopher}, "
    "year={2016}}"
)
_JHA_CITATION = (
    "@article{jha2019irnet, title={IRNet: A General Purpose Deep Residual Regression Framework "
    "for Materials Discovery}, author={Jha, Dipendra and Ward, Logan and Yang, Zijiang and "
    "Wolverton, Christopher and Foster, Ian and Liao, Wei-keng and Choudhary, Alok and Agrawal, "
    "Ankit}, journal={KDD '19}, year={2019}, doi={10.1145/3292500.3330703}}"
)


class Magpie145(CompositionFeaturizer):
    """Magpie-style composition attributes, the 145 inputs of IRNet on physical attributes."""

    name = "magpie145"

    def __init__(self, sub_batch: int = 1024):
        self.sub_batch = sub_batch
        self._table = magpie_table(MAGPIE_PROPERTIES)
        self._electronegativity, self._oxidation, self._n_states = pymatgen_ion_data()

    def feature_labels(self) -> list[str]:
        return (
            ["0-norm"]
            + [f"{p}-norm" for p in P_NORMS]
            + [f"MagpieData {s} {p}" for p in MAGPIE_PROPERTIES for s in MAGPIE_STATS]
            + [f"avg {o} valence electrons" for o in ORBITALS]
            + ["compound possible", "max ionic char", "avg ionic char"]
        )

    def citations(self) -> list[str]:
        return [_CITATION, _JHA_CITATION]

    @staticmethod
    def matminer_equivalent():
        """The matminer featurizer these features equal (the oracle of the tests and benchmarks;
        one composition at a time, ~280x slower)."""
        from matminer.featurizers.base import MultipleFeaturizer
        from matminer.featurizers.composition import ElementProperty, IonProperty, Stoichiometry, ValenceOrbital

        parts = [Stoichiometry(), ElementProperty.from_preset("magpie"), ValenceOrbital(props=["avg"])]
        return MultipleFeaturizer([*parts, IonProperty(fast=True)])

    def compute(self, batch: CompositionBatch) -> np.ndarray:
        out = np.empty((len(batch), 145))
        for start in range(0, len(batch), self.sub_batch):  # cache-sized pieces
            rows = slice(start, start + self.sub_batch)
            out[rows] = self._compute(batch.z[rows], batch.amount[rows])
        return out

    def _compute(self, z: np.ndarray, amount: np.ndarray) -> np.ndarray:
        # Element-slot-major layout (width, n, ...): every reduction over the elements of a
        # composition becomes a few whole-array operations on contiguous slices.
        n = len(z)
        mask = z > 0
        width = max(int(mask.sum(axis=1).max(initial=1)), 1)
        z, amount, mask = z[:, :width], amount[:, :width], mask[:, :width]
        total = amount.sum(axis=1)
        out = np.empty((n, 145))

        out[:, 0] = mask.sum(axis=1)
        f1 = amount / total[:, None]
        f2 = f1 * f1
        f3 = f2 * f1
        f5 = f3 * f2
        powers = {2: f2, 3: f3, 5: f5, 7: f5 * f2, 10: f5 * f5}
        for k, p in enumerate(P_NORMS, start=1):
            out[:, k] = powers[p].sum(axis=1) ** (1.0 / p)

        # Padding slots repeat the first element (min/max unchanged) with weight 0.
        filled = np.where(mask, z, z[:, :1]).T
        values = self._table[filled]  # (width, n, 22)
        weights = amount.T[:, :, None]
        mean = (values * weights).sum(axis=0) / total[:, None]
        avg_dev = (np.abs(values - mean) * weights).sum(axis=0) / total[:, None]
        minimum = values.min(axis=0)
        maximum = values.max(axis=0)
        largest = amount.max(axis=1, keepdims=True)
        tied = mask & (np.abs(amount - largest) <= _ISCLOSE_ATOL + _ISCLOSE_RTOL * largest)
        mode = np.where(tied.T[:, :, None], values, np.inf).min(axis=0)
        stats = out[:, 6:138].reshape(n, len(MAGPIE_PROPERTIES), len(MAGPIE_STATS))
        for k, stat in enumerate((minimum, maximum, maximum - minimum, mean, avg_dev, mode)):
            stats[:, :, k] = stat
        out[:, 6:138] = stats.reshape(n, -1)
        out[:, 138:142] = mean[:, _VALENCE_COLUMNS]

        single = out[:, 0] < 2
        out[:, 142] = single | self._compound_possible(z, amount, mask)
        chi = self._electronegativity[z].T
        frac = f1.T
        max_ionic = np.zeros(n)
        avg_ionic = np.zeros(n)
        for i in range(width):
            for j in range(i + 1, width):
                pair = mask[:, j]  # slot j filled implies slot i filled
                ionic = np.where(pair, 1.0 - np.exp(-0.25 * (chi[i] - chi[j]) ** 2), 0.0)
                np.maximum(max_ionic, ionic, out=max_ionic)
                avg_ionic += frac[i] * frac[j] * ionic
        out[:, 143] = max_ionic
        out[:, 144] = avg_ionic
        return out

    def _compound_possible(self, z: np.ndarray, amount: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """matminer's fast test: one common oxidation state per element, charges sum to ~0."""
        return neutral_assignment_exists(z, amount, self._oxidation, self._n_states, max_combinations=_MAX_COMBINATIONS)
