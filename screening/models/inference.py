"""A trained stacked network folded into a lean inference program.

At inference BatchNorm is an affine map per feature, so it folds into the preceding linear
layer (``W' = W * s``, ``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``);
dropout is the identity. What remains per layer is one ``baddbmm`` with the bias fused, an
in-place activation and an in-place shortcut addition, all in one dtype. On a CPU this halves
the memory traffic of the module version in float32, and in bfloat16 it lets the matrix units
(AMX, or tensor cores on a GPU) run at their rate instead of waiting on casts and element-wise
passes (figures: docs/benchmarks.md, "Inference alone"). Float32 results equal the module's to
rounding.

On a GPU the members run one after the other as plain matrix products whose bias and ReLU are
applied in the cuBLASLt epilogue (``torch._addmm_activation``): a stacked ``baddbmm`` with a
broadcast bias first writes the bias into its output and then reads it back, and a separate ReLU
reads and writes the output again, so at 1024 features those passes cost about as much as the
products themselves; one member's activations also stay in the GPU's cache between passes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from screening.models.architectures import StackedNet
from screening.models.layers import StackedBatchNorm, StackedLinear

Affine = tuple[torch.Tensor, torch.Tensor]  # (weight [K, in, out], bias [K, 1, out])


def _affine(linear: StackedLinear, norm: torch.nn.Module | None, dtype: torch.dtype) -> Affine:
    weight, bias = linear.weight.detach(), linear.bias.detach()
    if isinstance(norm, StackedBatchNorm):
        scale = norm.weight.detach() * torch.rsqrt(norm.running_var + norm.eps)
        weight = weight * scale
        bias = (bias - norm.running_mean) * scale + norm.bias.detach()
    return weight.to(dtype).contiguous(), bias.to(dtype).contiguous()


class FoldedNet:
    """The inference computation of a :class:`StackedNet` (in eval mode), in ``dtype``."""

    def __init__(self, net: StackedNet, dtype: torch.dtype = torch.float32, memberwise: bool | None = None):
        """``memberwise``: one member at a time with fused epilogues (default: on a GPU)."""
        self.members, self.dtype, self.memberwise = net.members, dtype, memberwise
        self.slope = 0.3 if net.arch.activation == "leaky_relu" else None
        self.branches = [
            (_affine(b.first, None, dtype), _affine(b.projection, None, dtype), _affine(b.second, None, dtype))
            for b in net.branches
        ]
        self.stages = []
        for stage in net.stages:
            layers = [_affine(lin, norm, dtype) for lin, norm in zip(stage.linears, stage.norms)]
            projection = _affine(stage.projection, None, dtype) if stage.projection is not None else None
            self.stages.append((stage.shortcut, layers, projection))
        weight, bias = _affine(net.output, None, dtype)
        self.output = weight[..., :1].contiguous(), bias[..., :1].contiguous()  # the primary head

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return x.relu_() if self.slope is None else F.leaky_relu_(x, self.slope)

    def _linear(self, x: torch.Tensor, affine: Affine) -> torch.Tensor:
        return torch.baddbmm(affine[1], x, affine[0])

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, d_in]`` standardized features -> ``[members, batch]`` (float32)."""
        if x.is_cuda if self.memberwise is None else self.memberwise:
            h = x.to(self.dtype)
            out = torch.stack([self._member(h, k) for k in range(self.members)])
            return out if out.dtype == torch.float64 else out.float()
        h = x.to(self.dtype).unsqueeze(0).expand(self.members, -1, -1)
        if self.branches:
            total = None
            for first, projection, second in self.branches:
                a1 = self._act(self._linear(h, first)).add_(self._linear(h, projection))
                a2 = self._act(self._linear(a1, second)).add_(a1)
                total = a2 if total is None else total.add_(a2)
            h = total
        for shortcut, layers, projection in self.stages:
            stage_in = h
            for i, affine in enumerate(layers):
                out = self._act(self._linear(h, affine))
                if shortcut == "layer":
                    out.add_(self._linear(h, projection) if i == 0 and projection is not None else h)
                h = out
            if shortcut == "stage":
                h = h + (self._linear(stage_in, projection) if projection is not None else stage_in)
        out = self._linear(h, self.output).squeeze(-1)
        return out if out.dtype == torch.float64 else out.float()

    # ---- one member at a time, products with fused epilogues (the GPU path) -----------------
    def _product(self, x: torch.Tensor, affine: Affine, k: int) -> torch.Tensor:
        return torch.addmm(affine[1][k, 0], x, affine[0][k])

    def _product_act(self, x: torch.Tensor, affine: Affine, k: int) -> torch.Tensor:
        if self.slope is None:  # bias and ReLU in the matmul's epilogue
            return torch._addmm_activation(affine[1][k, 0], x, affine[0][k])
        return F.leaky_relu_(self._product(x, affine, k), self.slope)

    def _member(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Member ``k`` on ``[batch, d_in]`` inputs -> ``[batch]``; the same sums as ``__call__``."""
        h = x
        if self.branches:
            total = None
            for first, projection, second in self.branches:
                a1 = self._product_act(x, first, k).add_(self._product(x, projection, k))
                a2 = self._product_act(a1, second, k).add_(a1)
                total = a2 if total is None else total.add_(a2)
            h = total
        for shortcut, layers, projection in self.stages:
            stage_in = h
            for i, affine in enumerate(layers):
                out = self._product_act(h, affine, k)
                if shortcut == "layer":
                    out.add_(self._product(h, projection, k) if i == 0 and projection is not None else h)
                h = out
            if shortcut == "stage":
                h = h + (self._product(stage_in, projection, k) if projection is not None else stage_in)
        return self._product(h, self.output, k).squeeze(-1)
