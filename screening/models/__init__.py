"""Residual networks for composition-property regression, as stacked ensembles."""

from screening.models.architectures import ARCHITECTURES, StackedNet, get_architecture, parameters_per_member
from screening.models.ensemble import Ensemble, ModelLoadError

__all__ = ["ARCHITECTURES", "Ensemble", "ModelLoadError", "StackedNet", "get_architecture", "parameters_per_member"]
