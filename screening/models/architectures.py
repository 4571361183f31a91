"""The published composition networks, as stacked ensembles (see :mod:`screening.models.layers`).

* ElemNet (Jha et al., Sci. Rep. 8, 17593, 2018): 17 fully connected ReLU layers, dropout after
  the 1024/512/256/128 stages (p = 0.2, 0.1, 0.3, 0.2; the TF1 code's 0.8/0.9/0.7/0.8 are
  keep-probabilities), no BatchNorm, no shortcuts.
* Plain-N, SRNet-N, IRNet-N (Jha et al., KDD 2019; Nat. Commun. 12, 2021): every layer
  ``ReLU(BN(Wx + b))``; IRNet adds a shortcut around every layer, SRNet around every stage of
  equal width; a shortcut is a linear projection (with bias) where the width changes and at the
  first layer, the identity elsewhere.
* BRNet (Gupta et al., 2023, "[2,2]" design): two parallel two-layer residual branches of width
  1024 summed, then residual stages 512x3-256x3-128x3-64x2-32x1, LeakyReLU(0.3) before each
  addition, no BatchNorm. iBRNet (2024) is the same network with a plateau schedule and early
  stopping (see :mod:`screening.models.training`).

Every network takes any input width and ends in a linear layer of width 1 (one more unit per
auxiliary data source while training on several, see ``heads``).
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from screening.models.designs import ARCHITECTURES, Architecture, get_architecture
from screening.models.layers import StackedBatchNorm, StackedLinear, activation

__all__ = ["ARCHITECTURES", "Architecture", "StackedNet", "get_architecture", "parameters_per_member"]


class _Branch(nn.Module):
    """``a1 = act(L1 x) + P x; a2 = act(L2 a1) + a1``."""

    def __init__(self, members: int, d_in: int, width: int, act: str):
        super().__init__()
        self.first = StackedLinear(members, d_in, width)
        self.projection = StackedLinear(members, d_in, width)
        self.second = StackedLinear(members, width, width)
        self.act = activation(act)

    def forward(self, x):
        a1 = self.act(self.first(x)) + self.projection(x)
        return self.act(self.second(a1)) + a1


class _Stage(nn.Module):
    def __init__(
        self, arch: Architecture, members: int, d_in: int, width: int, n_layers: int, first_stage: bool, dropout: float
    ):
        super().__init__()
        self.shortcut = arch.shortcut
        widths = [d_in] + [width] * n_layers
        self.linears = nn.ModuleList(StackedLinear(members, a, b) for a, b in pairwise(widths))
        self.norms = nn.ModuleList(
            StackedBatchNorm(members, width) if arch.batchnorm else nn.Identity() for _ in range(n_layers)
        )
        self.act = activation(arch.activation)
        needs_projection = arch.shortcut != "none" and (d_in != width or (first_stage and not arch.branches))
        self.projection = StackedLinear(members, d_in, width) if needs_projection else None
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x):
        stage_in = h = x
        for i, (linear, norm) in enumerate(zip(self.linears, self.norms)):
            out = self.act(norm(linear(h)))
            if self.shortcut == "layer":
                out = out + (self.projection(h) if i == 0 and self.projection is not None else h)
            h = out
        if self.shortcut == "stage":
            h = h + (self.projection(stage_in) if self.projection is not None else stage_in)
        return self.dropout(h)


class StackedNet(nn.Module):
    """``members`` independent networks of one architecture, evaluated as one computation.

    ``forward`` takes ``[batch, d_in]`` (the same inputs for every member) or
    ``[members, batch, d_in]`` and returns ``[members, batch]``; with ``heads`` > 1,
    ``[members, batch, heads]``: one output unit per data source sharing the network (training
    with auxiliary data; head 0 is the primary source, the only one a saved model keeps)."""

    def __init__(self, arch: Architecture | str, d_in: int, members: int = 1, heads: int = 1):
        super().__init__()
        self.arch = get_architecture(arch) if isinstance(arch, str) else arch
        self.d_in, self.members, self.heads = d_in, members, heads
        width = d_in
        if self.arch.branches:
            self.branches = nn.ModuleList(
                _Branch(members, d_in, 1024, self.arch.activation) for _ in range(self.arch.branches)
            )
            width = 1024
        else:
            self.branches = nn.ModuleList()
        stages = []
        for s, (stage_width, n_layers) in enumerate(self.arch.stages):
            p = self.arch.dropout[s] if s < len(self.arch.dropout) else 0.0
            stages.append(_Stage(self.arch, members, width, stage_width, n_layers, s == 0, p))
            width = stage_width
        self.stages = nn.ModuleList(stages)
        self.output = StackedLinear(members, width, heads)

    def reset_parameters(self, seeds: list[int]) -> None:
        if len(seeds) != self.members:
            raise ValueError(f"need one seed per member ({self.members}), got {len(seeds)}")
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        for module in self.modules():
            if isinstance(module, (StackedLinear, StackedBatchNorm)):
                module.reset_parameters(generators)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.members, -1, -1)
        if self.branches:
            x = sum(branch(x) for branch in self.branches)
        for stage in self.stages:
            x = stage(x)
        out = self.output(x)
        return out.squeeze(-1) if self.heads == 1 else out

    def keep_primary_head(self) -> None:
        """Drop the auxiliary sources' output units: what remains is the ordinary network."""
        if self.heads == 1:
            return
        out = self.output
        self.output = StackedLinear(self.members, out.weight.shape[1], 1).to(out.weight.device)
        with torch.no_grad():
            self.output.weight.copy_(out.weight[..., :1])
            self.output.bias.copy_(out.bias[..., :1])
        self.heads = 1


def parameters_per_member(net: StackedNet) -> int:
    """Trainable parameters of one member (the count the papers report)."""
    return sum(p.numel() for p in net.parameters()) // net.members
