"""Layers with a leading *member* dimension: K networks evaluated as one batched computation.

Activations have shape ``[K, batch, features]``; a linear layer holds weights ``[K, in, out]``
and runs one ``baddbmm``. Member k of a stacked layer computes exactly what an ordinary layer
with member k's weights would, so an ensemble is trained and evaluated together at the cost of
one wide network (and a single model is simply K = 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class StackedLinear(nn.Module):
    def __init__(self, members: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(members, 1, d_out))

    def reset_parameters(self, generators: list[torch.Generator]) -> None:
        """Glorot-uniform weights (Keras' default, as in the papers' code), zero biases; member
        k drawn from ``generators[k]`` so that members do not depend on each other."""
        d_in, d_out = self.weight.shape[1:]
        limit = math.sqrt(6.0 / (d_in + d_out))
        with torch.no_grad():
            for k, gen in enumerate(generators):
                self.weight[k].uniform_(-limit, limit, generator=gen)
            self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class StackedBatchNorm(nn.Module):
    """BatchNorm over the batch dimension, separately for every member; eps 1e-3 as in the
    papers' Keras code. The running statistics use PyTorch's momentum 0.1 rather than Keras'
    0.01 (0.99 in Keras' convention): with large batches an epoch has only ~100 steps, and the
    slower average leaves early validation (and so early stopping) on stale statistics."""

    def __init__(self, members: int, features: int, eps: float = 1e-3, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(members, 1, features))
        self.bias = nn.Parameter(torch.zeros(members, 1, features))
        self.register_buffer("running_mean", torch.zeros(members, 1, features))
        self.register_buffer("running_var", torch.ones(members, 1, features))

    def reset_parameters(self, generators: list[torch.Generator]) -> None:
        with torch.no_grad():
            self.weight.fill_(1.0)
            self.bias.zero_()
            self.running_mean.zero_()
            self.running_var.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()  # statistics in float32 even under autocast
        if self.training:
            mean = x.mean(dim=1, keepdim=True)
            var = x.var(dim=1, keepdim=True, unbiased=False)
            with torch.no_grad():
                n = x.shape[1]
                unbiased = var * (n / max(n - 1, 1))
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.3)  # the Keras default slope, as in BRNet's code
    raise ValueError(f"unknown activation {name!r}")
