"""Fraction-weighted means of learned element embeddings, read from the files matminer installs
(no download): ``mat2vec200``, the 200-dimensional word2vec embeddings of Tshitoyan et al. (2019)
that CrabNet and Roost start from.

Why: Magpie attributes describe an element by a few hand-picked properties; the embeddings carry
what the literature says about it (chemical similarity learned from 3.3 million abstracts). Used
alongside Magpie145 and the elemental fractions they give the residual networks what the
attention models get from their element tables.
"""

from __future__ import annotations

import numpy as np

from screening.composition import CompositionBatch
from screening.element_tables import kept_on_disk
from screening.elements import MAX_Z, SYMBOLS
from screening.featurizers.base import CompositionFeaturizer

_MAT2VEC = (
    "@article{tshitoyan2019unsupervised, title={Unsupervised word embeddings capture latent "
    "knowledge from materials science literature}, author={Tshitoyan, Vahe and Dagdelen, John and "
    "Weston, Leigh and Dunn, Alexander and Rong, Ziqin and Kononova, Olga and Persson, Kristin A "
    "and Ceder, Gerbrand and Jain, Anubhav}, journal={Nature}, volume={571}, pages={95--98}, "
    "year={2019}, doi={10.1038/s41586-019-1335-8}}"
)
_SOURCES = {  # name: (matminer data class, citation)
    "mat2vec200": ("MatscholarElementData", _MAT2VEC),
}


@kept_on_disk
def embedding_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(table[MAX_Z + 1, d], known[MAX_Z + 1])`` of one embedding, through matminer's own data
    class (no imputation); row 0 and elements without an embedding are zeros, ``known`` False."""
    from matminer.utils import data

    source = getattr(data, _SOURCES[name][0])(impute_nan=False)
    vectors = {s: [float(v[p]) for p in source.prop_names] for s, v in source.all_element_data.items()}
    table = np.zeros((MAX_Z + 1, len(source.prop_names)))
    known = np.zeros(MAX_Z + 1, bool)
    for z, symbol in enumerate(SYMBOLS, start=1):
        if symbol in vectors and np.isfinite(vectors[symbol]).all():
            table[z], known[z] = vectors[symbol], True
    return table, known


class ElementEmbeddingMean(CompositionFeaturizer):
    """The fraction-weighted mean of an element embedding over a composition's elements."""

    def __init__(self, name: str):
        if name not in _SOURCES:
            raise ValueError(f"unknown element embedding {name!r}; choose one of {', '.join(_SOURCES)}")
        self.name = self.embedding = name
        self._table, self._known = embedding_table(name)

    def feature_labels(self) -> list[str]:
        return [f"{self.embedding} mean {k}" for k in range(self._table.shape[1])]

    def citations(self) -> list[str]:
        return [_SOURCES[self.embedding][1]]

    def unsupported(self, batch: CompositionBatch) -> list[str | None]:
        return self.element_reasons(batch, ~self._known[batch.z] & batch.mask, f"have no {self.embedding} embedding")

    def compute(self, batch: CompositionBatch) -> np.ndarray:
        # the fraction-weighted mean as one matmul: (rows x elements present) fractions times
        # the table's rows of those elements (a screen's block holds a few of the ~100 elements)
        present, slot = np.unique(batch.z, return_inverse=True)
        weights = np.zeros((len(batch), len(present)))
        weights[np.arange(len(batch))[:, None], slot.reshape(batch.z.shape)] = batch.fraction  # padding: row 0 is 0
        return weights @ self._table[present]
