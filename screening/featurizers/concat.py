"""Concatenation of featurizers, e.g. ``magpie145+elemfrac86`` (the 231 inputs of IRNet's best
configuration). A row is featurized only if every part can featurize it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from screening.featurizers.base import FeatureTable, Featurizer


class Concatenation(Featurizer):
    def __init__(self, parts: list[Featurizer]):
        if len(parts) < 2:
            raise ValueError("a concatenation needs at least two featurizers")
        self.parts = parts
        labels = self.feature_labels()
        if len(set(labels)) != len(labels):
            raise ValueError(f"feature labels of {self.spec()} collide")

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.spec()

    def spec(self) -> str:
        return "+".join(p.spec() for p in self.parts)

    def feature_labels(self) -> list[str]:
        return [label for p in self.parts for label in p.feature_labels()]

    def required_columns(self) -> list[str]:
        return list(dict.fromkeys(c for p in self.parts for c in p.required_columns()))

    def citations(self) -> list[str]:
        return [c for p in self.parts for c in p.citations()]

    def featurize_frame(self, frame: pd.DataFrame) -> FeatureTable:
        tables = [p.featurize_frame(frame) for p in self.parts]
        common = tables[0].index
        for t in tables[1:]:
            common = np.intersect1d(common, t.index)
        rejections = {}
        for t in tables:
            for r in t.rejections:
                rejections.setdefault(r.index, r)
        values = np.hstack([t.values[np.searchsorted(t.index, common)] for t in tables])
        formula = tables[0].formula[np.searchsorted(tables[0].index, common)]
        return FeatureTable(self.feature_labels(), common, formula, values, sorted(rejections.values(), key=lambda r: r.index))
