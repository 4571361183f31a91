"""The featurizer contract, after matminer's: ``featurize`` (one composition),
``feature_labels``, ``citations``, ``implementors``; plus the vectorized batch methods that do the
real work at screening scale and report, instead of raising, the rows they cannot process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from screening.composition import CompositionBatch, FormulaError, Rejection, parse_formulas
from screening.elements import SYMBOLS, Z_OF

FEATURE_BLOCK = 8_192  # rows featurized at a time by featurize_frame_float32


class UnsupportedCompositionError(ValueError):
    """A well-formed composition that a featurizer cannot represent (e.g. an element outside
    its element list)."""


@dataclass
class FeatureTable:
    """Features of the rows that could be featurized, and the rows that could not.

    ``index`` holds each featurized row's position in the input; ``values`` is float64
    ``(len(index), len(labels))`` (float32 from ``featurize_frame_float32``). Every input row is
    in exactly one of ``index`` and ``rejections``.
    """

    labels: list[str]
    index: np.ndarray
    formula: np.ndarray
    values: np.ndarray
    rejections: list[Rejection] = field(default_factory=list)


class Featurizer(ABC):
    """Anything that turns rows of an input table into a fixed-width numeric vector."""

    name: str = ""

    @abstractmethod
    def feature_labels(self) -> list[str]: ...

    @abstractmethod
    def featurize_frame(self, frame: pd.DataFrame) -> FeatureTable:
        """Featurize the rows of ``frame``; rows that cannot be featurized are rejected."""

    def required_columns(self) -> list[str]:
        """Columns the input table must have."""
        return ["formula"]

    def featurize_frame_float32(self, frame: pd.DataFrame, block: int = FEATURE_BLOCK) -> FeatureTable:
        """:meth:`featurize_frame` with float32 ``values`` (what models read and files store),
        computed ``block`` rows at a time. The float64 arrays of a block stay under glibc's
        32 MB mmap threshold, so they are reused instead of faulted in anew: 50k rows of 431
        features take a third of the time they take in one piece."""
        require_columns(frame.columns, self.required_columns())
        return self._in_blocks(len(frame), lambda start, stop: self.featurize_frame(frame.iloc[start:stop]), block)

    def featurize_batch_float32(self, batch: CompositionBatch, block: int = FEATURE_BLOCK) -> FeatureTable:
        """:meth:`featurize_frame_float32` of compositions already parsed (a screen's candidates);
        ``index`` holds positions in ``batch``. Featurizers of compositions use the batch as it
        is; others get its formulas as a table."""
        return self.featurize_frame_float32(pd.DataFrame({"formula": batch.formula}), block)

    def _in_blocks(self, n: int, featurize, block: int) -> FeatureTable:
        """Rows ``0..n`` featurized by ``featurize(start, stop)`` ``block`` rows at a time into
        one float32 table. ``featurize`` gives tables indexed within the block: the columns of
        this featurizer side by side (one table, or a concatenation's parts), written straight
        into the float32 table when all of them hold the same rows (a 50,000-row chunk of 431
        features: no float64 copy of the whole, ~10% of featurizing it)."""
        labels = self.feature_labels()
        values = np.empty((n, len(labels)), np.float32)
        index, formula, rejections, filled = [], [], [], 0
        for start in range(0, n, block):
            parts = featurize(start, min(start + block, n))
            parts = [parts] if isinstance(parts, FeatureTable) else parts
            if all(np.array_equal(p.index, parts[0].index) for p in parts[1:]):
                rows, column = parts[0], 0
                for part in parts:
                    width = part.values.shape[1]
                    values[filled : filled + len(rows.index), column : column + width] = part.values
                    column += width
            else:
                rows = side_by_side(labels, parts)
                values[filled : filled + len(rows.index)] = rows.values
            filled += len(rows.index)
            index.append(rows.index + start)
            formula.append(rows.formula)
            rejections += [Rejection(r.index + start, r.formula, r.reason) for r in _first_reasons(parts)]
        if not index:
            return FeatureTable(labels, np.zeros(0, np.int64), np.empty(0, object), values, [])
        return FeatureTable(labels, np.concatenate(index), np.concatenate(formula), values[:filled], rejections)

    def citations(self) -> list[str]:
        return []

    def implementors(self) -> list[str]:
        return ["screening developers"]

    def spec(self) -> str:
        """A string that :func:`screening.featurizers.get_featurizer` turns back into an equal
        featurizer (used for manifests and to rebuild featurizers on Dask workers)."""
        return self.name


def side_by_side(labels: list[str], tables: list[FeatureTable]) -> FeatureTable:
    """Tables of the same input side by side (columns ``labels``), over the rows every one of
    them could featurize; a row rejected by several keeps the first table's reason."""
    common = tables[0].index
    for t in tables[1:]:
        common = np.intersect1d(common, t.index)
    values = np.empty((len(common), sum(t.values.shape[1] for t in tables)))
    start = 0
    for t in tables:  # written in place: an hstack of the parts costs as much as computing them
        width = t.values.shape[1]
        values[:, start : start + width] = (
            t.values if len(t.index) == len(common) else t.values[np.searchsorted(t.index, common)]
        )
        start += width
    formula = tables[0].formula[np.searchsorted(tables[0].index, common)]
    return FeatureTable(labels, common, formula, values, _first_reasons(tables))


def _first_reasons(tables: list[FeatureTable]) -> list[Rejection]:
    rejections: dict[int, Rejection] = {}
    for t in tables:
        for r in t.rejections:
            rejections.setdefault(r.index, r)
    return sorted(rejections.values(), key=lambda r: r.index)


class MissingColumnsError(KeyError):
    def __str__(self) -> str:  # KeyError would print the repr of its message
        return str(self.args[0])


def require_columns(available, required: list[str]) -> None:
    """Raise :class:`MissingColumnsError` naming the ``required`` columns not ``available``."""
    available = list(available)
    missing = [c for c in required if c not in available]
    if missing:
        raise MissingColumnsError(f"input has no column(s) {', '.join(map(repr, missing))}; it has {available}")


class CompositionFeaturizer(Featurizer):
    """A featurizer of chemical compositions. Subclasses implement :meth:`compute` on a batch
    and, if they support only some elements, :meth:`unsupported`."""

    @abstractmethod
    def compute(self, batch: CompositionBatch) -> np.ndarray:
        """float64 features ``(len(batch), n_features)`` of a batch of supported rows."""

    def unsupported(self, batch: CompositionBatch) -> list[str | None]:
        """For each row, ``None`` if supported, else the reason it is not."""
        return [None] * len(batch)

    @staticmethod
    def element_reasons(batch: CompositionBatch, missing: np.ndarray, why: str) -> list[str | None]:
        """Per row, ``"element(s) X, Y <why>"`` naming the slots flagged in ``missing`` (a
        ``(rows, slots)`` mask), ``None`` where none is."""
        reasons: list[str | None] = [None] * len(batch)
        for r in np.flatnonzero(missing.any(axis=1)):
            names = [SYMBOLS[z - 1] for z in batch.z[r][missing[r]]]
            reasons[r] = f"element(s) {', '.join(names)} {why}"
        return reasons

    def featurize(self, composition: str | Mapping[str, float]) -> list[float]:
        """Features of one composition (a formula or ``{symbol: amount}``); raises
        :class:`FormulaError` or :class:`UnsupportedCompositionError` with the reason."""
        batch = _single_batch(composition)
        reason = self.unsupported(batch)[0]
        if reason is not None:
            raise UnsupportedCompositionError(f"cannot featurize {composition!r}: {reason}")
        return self.compute(batch)[0].tolist()

    def featurize_batch(self, batch: CompositionBatch) -> FeatureTable:
        reasons = self.unsupported(batch)
        bad = [r for r, reason in enumerate(reasons) if reason is not None]  # rows of the few rejected only
        rejections = [Rejection(int(batch.index[r]), str(batch.formula[r]), reasons[r]) for r in bad]
        ok = np.ones(len(batch), bool)
        ok[bad] = False
        good = batch if not bad else batch.select(ok)
        values = self.compute(good) if len(good) else np.zeros((0, len(self.feature_labels())))
        return FeatureTable(self.feature_labels(), good.index, good.formula, values, rejections)

    def featurize_batch_float32(self, batch: CompositionBatch, block: int = FEATURE_BLOCK) -> FeatureTable:
        return self._in_blocks(len(batch), lambda start, stop: self.featurize_batch(rows_of(batch, start, stop)), block)

    def featurize_formulas(self, formulas) -> FeatureTable:
        batch, rejected = parse_formulas(formulas)
        table = self.featurize_batch(batch)
        table.rejections = sorted(rejected + table.rejections, key=lambda r: r.index)
        return table

    def featurize_frame(self, frame: pd.DataFrame) -> FeatureTable:
        require_columns(frame.columns, self.required_columns())
        return self.featurize_formulas(frame["formula"].tolist())


def rows_of(batch: CompositionBatch, start: int, stop: int) -> CompositionBatch:
    """Rows ``start..stop`` of a batch, indexed from 0 (as if parsed on their own)."""
    part = batch.select(np.arange(start, stop))
    return CompositionBatch(np.arange(stop - start), part.formula, part.z, part.amount)


def _single_batch(composition: str | Mapping[str, float]) -> CompositionBatch:
    if isinstance(composition, Mapping):
        unknown = [s for s in composition if s not in Z_OF]
        if unknown:
            raise FormulaError(dict(composition), f"unknown element {unknown[0]!r}")
        bad = [s for s, a in composition.items() if not float(a) > 0]
        if bad or not composition:
            raise FormulaError(dict(composition), "amounts must be positive" if bad else "empty composition")
        formula = "".join(f"{s}{float(a):g}" for s, a in composition.items())
        zs = np.array([Z_OF[s] for s in composition], np.int64)
        amounts = np.array([float(a) for a in composition.values()])
        return CompositionBatch.from_tokens(
            np.array([formula], object), np.zeros(1, np.int64), np.zeros(len(zs), np.int64), zs, amounts
        )
    batch, rejected = parse_formulas([composition])
    if rejected:
        raise FormulaError(composition, rejected[0].reason)
    return batch
