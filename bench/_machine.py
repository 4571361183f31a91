"""What a benchmark's figures depend on besides the code: this VM's matmul rate, measured in the
run (on shared 2-core VMs it moves by 20% from hour to hour, and the forward pass with it)."""

from __future__ import annotations

import time


def matmul_rate(dtype, n: int = 2048, repeat: int = 10) -> float:
    """This machine's ``torch.mm`` rate (GFLOP/s) on square matrices, all threads."""
    import torch

    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeat):
        torch.mm(a, b)
    return 2 * n**3 * repeat / (time.perf_counter() - start) / 1e9


def matmul_rates() -> dict[str, float]:
    import torch

    return {"fp32": round(matmul_rate(torch.float32), 1), "bf16": round(matmul_rate(torch.bfloat16), 1)}


def forward_flop(model) -> int:
    """Floating-point operations of one candidate's forward pass through an ensemble: two per
    weight of its member-stacked linear layers (biases and activations are noise beside them)."""
    return 2 * sum(p.numel() for n, p in model.net.named_parameters() if n.endswith("weight") and p.dim() == 3)
