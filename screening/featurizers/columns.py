"""Passthrough of "any numeric vector": named numeric columns of the input table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from screening.composition import Rejection
from screening.featurizers.base import FeatureTable, Featurizer, require_columns


class NumericColumns(Featurizer):
    """Uses the named numeric columns of the input as the feature vector, unchanged.

    The table must also have a ``formula`` column (the identifier of every output row). Rows
    with a missing, non-numeric or infinite value are rejected, naming the column and value."""

    name = "columns"

    def __init__(self, columns: list[str]):
        if not columns:
            raise ValueError("the columns featurizer needs at least one column name: columns:a,b,c")
        if len(set(columns)) != len(columns):
            raise ValueError(f"duplicate column names in {columns}")
        self.columns = list(columns)

    def spec(self) -> str:
        return "columns:" + ",".join(self.columns)

    def feature_labels(self) -> list[str]:
        return list(self.columns)

    def required_columns(self) -> list[str]:
        return ["formula", *self.columns]

    def featurize_frame(self, frame: pd.DataFrame) -> FeatureTable:
        require_columns(frame.columns, self.required_columns())
        numeric = {c: pd.to_numeric(frame[c], errors="coerce") for c in self.columns}
        values = np.column_stack([numeric[c].to_numpy(np.float64) for c in self.columns])
        finite = np.isfinite(values)
        ok = finite.all(axis=1)
        formulas = frame["formula"].to_numpy(object)
        rejections = []
        for r in np.flatnonzero(~ok):
            j = int(np.flatnonzero(~finite[r])[0])
            raw = frame[self.columns[j]].iloc[r]
            rejections.append(
                Rejection(int(r), str(formulas[r]), f"column {self.columns[j]!r} holds {raw!r}, not a finite number")
            )
        index = np.flatnonzero(ok)
        return FeatureTable(self.feature_labels(), index, formulas[index], values[index], rejections)
