"""Strings for many rows at once: each distinct value is formatted once in Python, and Arrow's
string kernels put the pieces together (composition keys, decomposition strings)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def formatted_once(values: np.ndarray, spec: str) -> pa.Array:
    """``format(v, spec)`` of every value, as Arrow strings; each distinct value formatted once."""
    distinct, index = np.unique(values, return_inverse=True)
    return pa.array([format(v, spec) for v in distinct.tolist()], pa.string()).take(pa.array(index.ravel()))


def joined_per_row(pieces: pa.Array, rows: np.ndarray, n: int, separator: str) -> list[str]:
    """The pieces of each of ``n`` rows joined by ``separator``: ``rows`` holds each piece's row,
    ascending; a row without pieces gives ``""``."""
    offsets = pa.array(np.r_[0, np.cumsum(np.bincount(rows, minlength=n))].astype(np.int32))
    return pc.binary_join(pa.ListArray.from_arrays(offsets, pieces), separator).to_pylist()
