"""Looking up many small integer rows (composition keys, stoichiometry patterns) among known
ones at once: every row is hashed to one uint64 and binary-searched in the known hashes, with
no per-row Python. Used where a screen meets its known compounds a million times a run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from screening.composition import CompositionBatch

#: Atom fractions are compared at 1e-6: compositions closer than that are the same compound
#: (``Li0.333333O0.666667`` is ``LiO2``), the resolution at which formulas are written.
KEY_RESOLUTION = 1_000_000

_MULTIPLIERS = np.random.default_rng(20261129).integers(1, 2**63, size=32, dtype=np.uint64) | np.uint64(1)


def hash_rows(a: np.ndarray) -> np.ndarray:
    """One uint64 per row of an integer array of up to 32 columns (a multiply-xorshift mix)."""
    a = np.ascontiguousarray(a, np.int64).view(np.uint64)
    h = np.full(len(a), np.uint64(0x9E3779B97F4A7C15))
    with np.errstate(over="ignore"):
        for j in range(a.shape[1]):
            h = (h ^ (a[:, j] * _MULTIPLIERS[j])) * np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(31)
    return h


class RowCounter:
    """How many known rows equal each query row, by hash alone (a collision among ~1e5 known
    keys and a query is ~1e-9 likely: fine for counts that are features). The hashes are looked
    up in pandas' hash table: 150,000 queries among 80,000 keys in 2.3 ms, 12.6 ms by binary search."""

    def __init__(self, known: np.ndarray):
        keys, self.counts = np.unique(hash_rows(known), return_counts=True)
        self.keys = pd.Index(keys)

    def __call__(self, query: np.ndarray) -> np.ndarray:
        at = self.keys.get_indexer(hash_rows(query))
        return np.where(at >= 0, self.counts[np.maximum(at, 0)], 0) if len(self.counts) else np.zeros(len(at), np.int64)


class RowSet:
    """Exact membership of integer rows: a hash match is confirmed by comparing the rows, so a
    collision can never call an unknown row known."""

    def __init__(self, known: np.ndarray):
        known = np.ascontiguousarray(known, np.int64)
        h = hash_rows(known)
        order = np.argsort(h, kind="stable")
        self.hashes, self.rows = h[order], known[order]

    def __len__(self) -> int:
        return len(self.hashes)

    def __contains__(self, row) -> bool:
        return bool(self.contains(np.asarray(row, np.int64)[None, :])[0])

    def contains(self, query: np.ndarray) -> np.ndarray:
        query = np.ascontiguousarray(query, np.int64)
        if len(self.hashes) == 0 or len(query) == 0:
            return np.zeros(len(query), bool)
        if query.shape[1] != self.rows.shape[1]:
            raise ValueError(f"rows of width {query.shape[1]} looked up among rows of width {self.rows.shape[1]}")
        h = hash_rows(query)
        first = np.searchsorted(self.hashes, h, side="left")
        last = np.searchsorted(self.hashes, h, side="right")
        found = np.zeros(len(query), bool)
        for k in range(int((last - first).max())):  # almost always one pass: equal hashes are equal rows
            at = first + k
            hit = np.flatnonzero((at < last) & ~found)
            found[hit] = (self.rows[at[hit]] == query[hit]).all(axis=1)
        return found


def composition_rows(batch: CompositionBatch, width: int = 5) -> np.ndarray:
    """The reduced composition of each row as ``width`` atomic numbers (ascending, zero padded)
    then their atom fractions at :data:`KEY_RESOLUTION`: equal rows, equal compositions
    (``Fe2O3`` and ``Fe4O6`` agree). Rows of more than ``width`` elements raise."""
    if int(batch.n_elements.max(initial=0)) > width:
        raise ValueError(f"compositions of more than {width} elements need a wider key")
    z = np.where(batch.mask, batch.z, 0).astype(np.int64)
    fraction = np.where(batch.mask, np.round(batch.fraction * KEY_RESOLUTION), 0).astype(np.int64)
    order = np.argsort(np.where(z > 0, z, np.iinfo(np.int64).max), axis=1, kind="stable")
    z, fraction = np.take_along_axis(z, order, axis=1), np.take_along_axis(fraction, order, axis=1)
    pad = ((0, 0), (0, max(0, width - z.shape[1])))
    return np.hstack([np.pad(z, pad)[:, :width], np.pad(fraction, pad)[:, :width]])


class KnownCompositions:
    """The reduced compositions of known compounds, for ``exclude_known``: which candidates of a
    batch are already known, in one vectorized lookup."""

    def __init__(self, known: CompositionBatch, width: int | None = None):
        self.width = max(5, int(known.n_elements.max(initial=0))) if width is None else width
        self._set = RowSet(composition_rows(known, self.width))

    def __len__(self) -> int:
        return len(self._set)

    def contains(self, batch: CompositionBatch) -> np.ndarray:
        if int(batch.n_elements.max(initial=0)) > self.width:  # wider than every known compound
            wide = batch.n_elements > self.width
            out = np.zeros(len(batch), bool)
            out[~wide] = self.contains(batch.select(np.flatnonzero(~wide)))
            return out
        return self._set.contains(composition_rows(batch, self.width))
