"""Residual networks for composition-property regression, as stacked ensembles.

Names are resolved on first use so that importing a torch-free submodule (``designs``) does not
load torch."""

from importlib import import_module

_HOME = {
    "ARCHITECTURES": "screening.models.designs",
    "get_architecture": "screening.models.designs",
    "StackedNet": "screening.models.architectures",
    "parameters_per_member": "screening.models.architectures",
    "Ensemble": "screening.models.ensemble",
    "ModelLoadError": "screening.models.ensemble",
}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'screening.models' has no attribute {name!r}")
    return getattr(import_module(_HOME[name]), name)
