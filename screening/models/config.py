"""What a training run is asked to do, without torch (the command line reads its defaults for
``--help``). The defaults are the shipped default model's recipe: IRNet-17 x3, 140 epochs of
one-cycle AdamW with weight decay 0.1 on :data:`RECIPE_FEATURES`, batch 512 (see
docs/benchmarks.md, "The energy model"); the command line and the train-models flow take their
defaults from here. ``bf16`` and ``compile`` are the machine's choice, off unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from screening.models.designs import get_architecture

RECIPE_FEATURES = "magpie145+elemfrac86+mat2vec200"


@dataclass
class TrainConfig:
    architecture: str = "irnet17"
    members: int = 3
    epochs: int = 140
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.1  # decoupled (AdamW); 0 gives the papers' Adam
    schedule: str = "onecycle"  # onecycle | plateau | constant
    patience: int | None = None  # early stopping: epochs without a better validation MAE
    plateau_patience: int = 45
    plateau_factor: float = 0.1
    plateau_min_delta: float = 1e-4
    min_lr: float = 1e-8
    bf16: bool = False  # bfloat16 autocast for the matmuls (CPU with AVX-512 bf16, or GPU)
    seed: int = 0
    # Wall-time budget. With one-cycle, the schedule is fitted to it: after the second epoch (the
    # first one compiles) as many epochs as the measured pace allows, at most ``epochs``, so the
    # run still ends annealed. Other schedules stop there, keeping the best weights.
    max_minutes: float | None = None
    compile: bool = False  # torch.compile the training forward (fuses its element-wise passes)

    def __post_init__(self):
        get_architecture(self.architecture)
        if self.schedule not in ("onecycle", "plateau", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}: onecycle, plateau or constant")
        if self.members < 1 or self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"members, epochs, batch size and lr must be positive: {self}")

    @classmethod
    def for_architecture(cls, architecture: str, **overrides) -> TrainConfig:
        """Defaults per architecture: iBRNet is BRNet with its paper's plateau schedule and
        early stopping; everything else starts from AdamW + one-cycle."""
        base: dict = {"architecture": architecture}
        if get_architecture(architecture).name == "ibrnet":
            base |= {"schedule": "plateau", "patience": 50, "weight_decay": 0.0}
        known = {f.name for f in fields(cls)}
        return cls(**(base | {k: v for k, v in overrides.items() if k in known and v is not None}))
