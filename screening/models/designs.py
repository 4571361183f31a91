"""The published networks as data (stage widths, shortcuts, activation, dropout), without torch:
the command line lists and checks architecture names without loading it. The papers behind each
design are cited in :mod:`screening.models.architectures`, which builds them."""

from __future__ import annotations

from dataclasses import dataclass

Stages = tuple[tuple[int, int], ...]
DEPTH_17: Stages = ((1024, 4), (512, 3), (256, 3), (128, 3), (64, 2), (32, 1))
DEPTH_24: Stages = ((1024, 4), (512, 4), (256, 4), (128, 4), (64, 3), (32, 2), (16, 2))
DEPTH_48: Stages = ((1024, 8), (512, 8), (256, 8), (128, 8), (64, 8), (32, 4), (16, 3))
BRNET_STAGES: Stages = ((512, 3), (256, 3), (128, 3), (64, 2), (32, 1))


@dataclass(frozen=True)
class Architecture:
    name: str
    stages: Stages
    shortcut: str = "none"  # none | layer | stage
    batchnorm: bool = False
    activation: str = "relu"
    dropout: tuple[float, ...] = ()  # after each stage, ElemNet only
    branches: int = 0  # BRNet's parallel residual branches of width 1024 in front


ARCHITECTURES: dict[str, Architecture] = {
    "elemnet": Architecture("elemnet", DEPTH_17, dropout=(0.2, 0.1, 0.3, 0.2, 0.0, 0.0)),
    "brnet": Architecture("brnet", BRNET_STAGES, "layer", activation="leaky_relu", branches=2),
    "ibrnet": Architecture("ibrnet", BRNET_STAGES, "layer", activation="leaky_relu", branches=2),
}
for _depth, _stages in ((17, DEPTH_17), (24, DEPTH_24), (48, DEPTH_48)):
    for _family, _shortcut in (("plain", "none"), ("srnet", "stage"), ("irnet", "layer")):
        ARCHITECTURES[f"{_family}{_depth}"] = Architecture(f"{_family}{_depth}", _stages, _shortcut, batchnorm=True)


def get_architecture(name: str) -> Architecture:
    key = name.lower().replace("-", "")
    if key not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[key]
