"""Featurizers: compositions (or table rows) to numeric vectors, matminer's contract plus batch
methods. :func:`get_featurizer` builds one from its spec string.

The classes are imported on first use (they pull pandas), so that the command line can list the
names without them."""

from __future__ import annotations

from functools import lru_cache
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from screening.featurizers.base import Featurizer

FEATURIZER_NAMES = (
    "magpie145",
    "elemfrac86",
    "mat2vec200",
    "columns:NAME[,NAME...]",
    "A+B (concatenation)",
)


@lru_cache(maxsize=16)
def get_featurizer(spec: str) -> Featurizer:
    """``magpie145``, ``elemfrac86``, ``mat2vec200`` (the mean of an element embedding),
    ``columns:a,b,c``, or several joined by ``+``.
    Cached: one instance per process."""
    from screening.featurizers.columns import NumericColumns
    from screening.featurizers.element_embedding import ElementEmbeddingMean
    from screening.featurizers.element_fraction import ElementFraction86
    from screening.featurizers.magpie import Magpie145

    if "+" in spec:
        from screening.featurizers.concat import Concatenation

        return Concatenation([get_featurizer(part) for part in spec.split("+")])
    if spec == Magpie145.name:
        return Magpie145()
    if spec == ElementFraction86.name:
        return ElementFraction86()
    if spec == "mat2vec200":
        return ElementEmbeddingMean(spec)
    if spec.startswith("columns:"):
        return NumericColumns([c.strip() for c in spec[len("columns:") :].split(",") if c.strip()])
    raise ValueError(f"unknown featurizer {spec!r}; choose one of {', '.join(FEATURIZER_NAMES)}")


_HOME = {
    "CompositionFeaturizer": "base",
    "FeatureTable": "base",
    "Featurizer": "base",
    "UnsupportedCompositionError": "base",
    "NumericColumns": "columns",
    "ElementEmbeddingMean": "element_embedding",
    "ElementFraction86": "element_fraction",
    "Magpie145": "magpie",
}
__all__ = sorted(_HOME) + ["FEATURIZER_NAMES", "get_featurizer"]


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'screening.featurizers' has no attribute {name!r}")
    return getattr(import_module(f"screening.featurizers.{_HOME[name]}"), name)
