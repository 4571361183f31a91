"""Elemental fractions over ElemNet's 86 elements, in ElemNet's order."""

from __future__ import annotations

import numpy as np

from screening.composition import CompositionBatch
from screening.elements import ELEMNET_ELEMENTS, MAX_Z, Z_OF
from screening.featurizers.base import CompositionFeaturizer

_JHA_2018 = (
    "@article{jha2018elemnet, title={ElemNet: Deep Learning the Chemistry of Materials From Only "
    "Elemental Composition}, author={Jha, Dipendra and Ward, Logan and Paul, Arindam and Liao, "
    "Wei-keng and Choudhary, Alok and Wolverton, Chris and Agrawal, Ankit}, journal={Scientific "
    "Reports}, volume={8}, pages={17593}, year={2018}, doi={10.1038/s41598-018-35934-y}}"
)


class ElementFraction86(CompositionFeaturizer):
    """Fraction of each of ElemNet's 86 elements (H..Pu without He, Ne, Ar, Po, At, Rn, Fr, Ra).
    Compositions with any other element are rejected, naming it."""

    name = "elemfrac86"

    def __init__(self, elements: tuple[str, ...] = ELEMNET_ELEMENTS):
        self.elements = tuple(elements)
        self._column = np.full(MAX_Z + 1, -1, np.int64)
        self._column[[Z_OF[s] for s in self.elements]] = np.arange(len(self.elements))

    def feature_labels(self) -> list[str]:
        return list(self.elements)

    def citations(self) -> list[str]:
        return [_JHA_2018]

    def unsupported(self, batch: CompositionBatch) -> list[str | None]:
        outside = (self._column[batch.z] < 0) & batch.mask
        return self.element_reasons(batch, outside, f"not among the {len(self.elements)} elements of {self.name}")

    def compute(self, batch: CompositionBatch) -> np.ndarray:
        out = np.zeros((len(batch), len(self.elements)))
        rows, slots = np.nonzero(batch.mask)
        out[rows, self._column[batch.z[rows, slots]]] = batch.fraction[rows, slots]
        return out
