"""Optimizers for stacked ensembles: AdamW with one learning rate shared by all members (fused),
or with one learning rate per member (for per-member ReduceLROnPlateau). Both update member k
exactly as a separate AdamW run on member k's parameters would."""

from __future__ import annotations

import torch


def _decays(name: str, p: torch.Tensor) -> bool:
    """Weight decay applies to the weight matrices of linear layers only."""
    return name.endswith("weight") and p.dim() == 3 and "norms" not in name


class SharedAdamW:
    """One learning rate for all members: PyTorch's fused AdamW on the stacked tensors, which
    is elementwise and so treats every member exactly as a separate run would, at a fraction of
    the cost of an unfused per-member optimizer."""

    def __init__(self, named_params, members: int, weight_decay: float = 0.0):
        self.named = dict(named_params)
        decay = [p for k, p in self.named.items() if _decays(k, p)]
        rest = [p for k, p in self.named.items() if not _decays(k, p)]
        fused = next(iter(self.named.values())).device.type in ("cpu", "cuda")
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
            lr=1e-3,
            fused=fused,
        )

    def step(self, lr: torch.Tensor) -> None:
        for group in self.opt.param_groups:
            group["lr"] = float(lr.max())
        self.opt.step()

    def state(self) -> dict[str, torch.Tensor]:
        out = {}
        for k, p in self.named.items():
            for key, value in self.opt.state.get(p, {}).items():
                out[f"adam.{key}.{k}"] = value if torch.is_tensor(value) else torch.tensor(value)
        return out

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        for k, p in self.named.items():
            state = {
                key.split(".")[1]: v
                for key, v in tensors.items()
                if key.startswith("adam.") and key.split(".", 2)[2] == k
            }
            if state:
                self.opt.state[p] = {key: v.to(p.device) if key != "step" else v.float() for key, v in state.items()}


class StackedAdamW:
    """AdamW with a learning rate per member, for schedules that differ between members (the
    plateau schedule); a member with learning rate 0 is left exactly as it is."""

    def __init__(self, named_params, members: int, weight_decay: float = 0.0, betas=(0.9, 0.999), eps=1e-8):
        self.named = dict(named_params)
        self.members, self.betas, self.eps, self.weight_decay = members, betas, eps, weight_decay
        self.m = {k: torch.zeros_like(p) for k, p in self.named.items()}
        self.v = {k: torch.zeros_like(p) for k, p in self.named.items()}
        self.steps = torch.zeros(1, dtype=torch.float64)

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        self.steps += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** float(self.steps), 1 - b2 ** float(self.steps)
        for k, p in self.named.items():
            if p.grad is None:
                continue
            shape = (self.members,) + (1,) * (p.dim() - 1)
            member_lr = lr.to(p.device, torch.float32).view(shape)
            self.m[k].mul_(b1).add_(p.grad, alpha=1 - b1)
            self.v[k].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            if self.weight_decay and _decays(k, p):
                p.mul_(1 - member_lr * self.weight_decay)
            denom = (self.v[k] / c2).sqrt_().add_(self.eps)
            p.sub_(member_lr / c1 * self.m[k] / denom)

    def state(self) -> dict[str, torch.Tensor]:
        out = {f"adam_m.{k}": v for k, v in self.m.items()} | {f"adam_v.{k}": v for k, v in self.v.items()}
        out["adam_steps"] = self.steps
        return out

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        for k in self.named:
            self.m[k].copy_(tensors[f"adam_m.{k}"])
            self.v[k].copy_(tensors[f"adam_v.{k}"])
        self.steps.copy_(tensors["adam_steps"])
