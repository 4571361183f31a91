"""Concatenation of featurizers, e.g. ``magpie145+elemfrac86`` (the 231 inputs of IRNet's best
configuration). A row is featurized only if every part can featurize it."""

from __future__ import annotations

import pandas as pd

from screening.composition import CompositionBatch, parse_formulas
from screening.featurizers.base import (
    FEATURE_BLOCK,
    CompositionFeaturizer,
    FeatureTable,
    Featurizer,
    require_columns,
    rows_of,
    side_by_side,
)


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

    @property
    def _of_compositions(self) -> bool:
        return all(isinstance(p, CompositionFeaturizer) for p in self.parts)

    def featurize_frame(self, frame: pd.DataFrame) -> FeatureTable:
        require_columns(frame.columns, self.required_columns())
        if self._of_compositions:  # one parse for all parts
            batch, rejected = parse_formulas(frame["formula"].tolist())
            tables = [p.featurize_batch(batch) for p in self.parts]
            for t in tables:
                t.rejections = sorted(rejected + t.rejections, key=lambda r: r.index)
            return self._joined(tables)
        return self._joined([p.featurize_frame(frame) for p in self.parts])

    def featurize_batch_float32(self, batch: CompositionBatch, block: int = FEATURE_BLOCK) -> FeatureTable:
        if not self._of_compositions:
            return super().featurize_batch_float32(batch, block)
        return self._in_blocks(
            len(batch), lambda start, stop: [p.featurize_batch(rows_of(batch, start, stop)) for p in self.parts], block
        )

    def _joined(self, tables: list[FeatureTable]) -> FeatureTable:
        """The parts' tables side by side, over the rows every part could featurize."""
        return side_by_side(self.feature_labels(), tables)
