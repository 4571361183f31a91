"""Training a stacked ensemble: every member gets its own seed (initialization, data order and
dropout), its own Adam moments, learning rate, early stopping and best weights, yet all members
run as one batched computation. Training resumes from its last completed epoch.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from screening.models.architectures import StackedNet
from screening.models.config import TrainConfig
from screening.models.inference import FoldedNet
from screening.models.optimizers import SharedAdamW, StackedAdamW

log = logging.getLogger(__name__)
STATE_DIR = "train_state"
HISTORY = "history.jsonl"
# Checkpoints are written after an epoch when at least 1/SAVE_SHARE times the last write's
# duration has passed since: every epoch on a CPU (epochs far longer than a write), every few
# epochs on a GPU, whose short epochs would otherwise wait on writing the weights, best weights
# and Adam moments. A crash loses at most that much work.
SAVE_SHARE = 0.1


def one_cycle(step: int, total: int, peak: float, pct_start: float = 0.3) -> float:
    """PyTorch's OneCycleLR (cosine, div_factor 25, final_div_factor 1e4) as a function."""
    start, end = peak / 25.0, peak / 25.0 / 1e4
    warm = max(1, int(pct_start * total))
    if step < warm:
        return start + (peak - start) * (1 - math.cos(math.pi * step / warm)) / 2
    t = min(1.0, (step - warm) / max(1, total - warm))
    return end + (peak - end) * (1 + math.cos(math.pi * t)) / 2


@dataclass
class Progress:
    """Everything about a run besides the tensors; saved as JSON after every epoch."""

    epoch: int = 0
    lr: list[float] = field(default_factory=list)
    best_mae: list[float] = field(default_factory=list)
    best_epoch: list[int] = field(default_factory=list)
    bad_epochs: list[int] = field(default_factory=list)
    plateau_best: list[float] = field(default_factory=list)
    plateau_wait: list[int] = field(default_factory=list)
    seconds: float = 0.0
    planned_epochs: int | None = None  # the one-cycle length fitted to ``max_minutes``, once measured


def epochs_within_budget(max_epochs: int, done: int, elapsed_s: float, epoch_s: float, budget_s: float) -> int:
    """How many epochs a schedule can span and still end within ``budget_s``: those done plus as
    many more as the remaining time holds at ``epoch_s`` each (at least those done, at most
    ``max_epochs``)."""
    more = int(max(0.0, budget_s - elapsed_s) // max(epoch_s, 1e-9))
    return max(done, min(max_epochs, done + more))


def batches_per_epoch(n: int, batch_size: int) -> int:
    """Full batches, plus the last partial one only if it holds at least half a batch: BatchNorm
    normalizes with the statistics of each training batch, and over a handful of rows those are
    noise. (78,850 rows in batches of 512 leave 2: that batch made training diverge, with
    spikes to 10x the error.) The rows left out are a different random few every epoch."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest and (2 * rest >= batch_size or full == 0) else 0)


def member_seeds(config: TrainConfig) -> list[int]:
    return [config.seed * 1000 + k for k in range(config.members)]


def train(
    net: StackedNet,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    config: TrainConfig,
    state_dir: Path | None = None,
    target_std: float = 1.0,
    progress: bool = False,
    source: torch.Tensor | None = None,
) -> tuple[Progress, list[dict]]:
    """Train ``net`` in place on standardized tensors (already on the target device) and leave
    each member at its best validation epoch. Validation MAE is reported in target units
    (``target_std`` times the standardized MAE). Resumes from ``state_dir`` if it holds a run
    of the same configuration. ``source`` (``[n]`` integers, with a net of as many ``heads``)
    says which data source, and so which output unit, each training row belongs to; validation
    rows are the primary source's (head 0).

    With no validation rows (``len(x_val) == 0``: a final model trained on every row, with a
    recipe validated beforehand), the last epoch is kept; schedules and early stopping that
    read the validation MAE are refused."""
    K, n = config.members, len(x_train)
    validating = len(x_val) > 0
    if not validating and (config.patience or config.schedule == "plateau"):
        raise ValueError(
            "early stopping (patience) and the plateau schedule need validation rows; "
            "train on every row only with a fixed schedule (onecycle or constant)"
        )
    if (source is None) != (net.heads == 1) or (source is not None and int(source.max()) >= net.heads):
        raise ValueError(
            f"a network with {net.heads} output head(s) needs a source index below {net.heads} "
            "for every training row (and one head without sources)"
        )
    seeds = member_seeds(config)
    device = x_train.device
    optimizer = StackedAdamW if config.schedule == "plateau" else SharedAdamW
    opt = optimizer(net.named_parameters(), K, weight_decay=config.weight_decay)
    best = {k: v.detach().clone() for k, v in net.state_dict().items()}
    run = Progress(
        lr=[config.lr] * K,
        best_mae=[math.inf] * K,
        best_epoch=[-1] * K,
        bad_epochs=[0] * K,
        plateau_best=[math.inf] * K,
        plateau_wait=[0] * K,
    )
    history: list[dict] = []
    if state_dir is not None and (state_dir / "state.json").exists():
        run, history = _load_state(state_dir, config, net, opt, best)
        log.info("resuming from epoch %d", run.epoch)

    steps_per_epoch = batches_per_epoch(n, config.batch_size)
    rows_per_epoch = min(n, steps_per_epoch * config.batch_size)
    fit_to_budget = config.max_minutes is not None and config.schedule == "onecycle"
    epochs = run.planned_epochs or config.epochs
    total_steps = steps_per_epoch * epochs
    started = time.perf_counter() - run.seconds
    last_save_s, saved_at, saved_epoch = 0.0, time.perf_counter(), run.epoch
    bar = _bar(progress, epochs, run.epoch)
    # On a GPU a step of these small matmuls is bound by kernel launches: CUDA graphs replay
    # the compiled forward and backward as one launch each.
    mode = "reduce-overhead" if device.type == "cuda" else None
    forward = torch.compile(net, mode=mode) if config.compile else net
    while run.epoch < epochs:
        stopped = (
            torch.tensor([b >= config.patience for b in run.bad_epochs])
            if config.patience
            else torch.zeros(K, dtype=torch.bool)
        )
        if bool(stopped.all()):
            break
        # A stopped member keeps its best weights: with a shared learning rate it trains on
        # (its snapshot is what counts, as with Keras' restore_best_weights); with per-member
        # rates it is frozen.
        epoch_start = time.perf_counter()
        order = torch.stack([torch.from_numpy(np.random.default_rng([s, run.epoch]).permutation(n)) for s in seeds]).to(
            device
        )
        torch.manual_seed(hash((config.seed, run.epoch)) & 0x7FFFFFFF)  # dropout masks
        net.train()
        train_abs = torch.zeros(K, device=device)
        for step in range(steps_per_epoch):
            idx = order[:, step * config.batch_size : (step + 1) * config.batch_size]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                pred = forward(x_train[idx])
            if source is not None:  # each row's own source's output unit
                pred = pred.gather(-1, source[idx].unsqueeze(-1)).squeeze(-1)
            per_member = (pred.float() - y_train[idx]).abs().mean(dim=1)
            net.zero_grad(set_to_none=True)
            per_member.sum().backward()
            train_abs += per_member.detach() * idx.shape[1]
            opt.step(_learning_rates(config, run, run.epoch * steps_per_epoch + step, total_steps) * ~stopped)

        if validating:
            val_mae = (evaluate_members(net, x_val, y_val, config.bf16) * target_std).tolist()
            _update(run, config, net, best, val_mae)
        else:
            val_mae = None
            run.best_epoch = [run.epoch] * K
        run.epoch += 1
        run.seconds = time.perf_counter() - started
        record = {
            "epoch": run.epoch,
            "train_mae": (train_abs / rows_per_epoch * target_std).tolist(),
            "val_mae": val_mae,
            "lr": _learning_rates(config, run, run.epoch * steps_per_epoch - 1, total_steps).tolist(),
            "seconds": round(time.perf_counter() - epoch_start, 2),
        }
        history.append(record)
        if fit_to_budget and run.planned_epochs is None and run.epoch >= 2:
            pace = 1.02 * (record["seconds"] + min(last_save_s, SAVE_SHARE * record["seconds"]))
            epochs = run.planned_epochs = epochs_within_budget(
                config.epochs, run.epoch, run.seconds, pace, 60 * config.max_minutes
            )
            total_steps = steps_per_epoch * epochs
            record["lr"] = _learning_rates(config, run, run.epoch * steps_per_epoch - 1, total_steps).tolist()
            log.info("one-cycle fitted to %.0f minutes: %d epochs at %.1f s each", config.max_minutes, epochs, pace)
            if bar is not None:
                bar.total = epochs
        if state_dir is not None and time.perf_counter() - saved_at >= last_save_s / SAVE_SHARE:
            saving = time.perf_counter()
            _save_state(state_dir, config, run, history, net, opt, best)
            saved_at, saved_epoch = time.perf_counter(), run.epoch
            last_save_s = saved_at - saving
        if bar is not None:
            bar.update(1)
            if validating:
                bar.set_postfix(val_mae=f"{np.mean(val_mae):.4f}", best=f"{np.mean(run.best_mae):.4f}")
            else:
                bar.set_postfix(train_mae=f"{float(train_abs.mean()) / rows_per_epoch * target_std:.4f}")
        if validating:
            log.info("epoch %d: val MAE %s", run.epoch, np.round(val_mae, 4))
        else:
            log.info("epoch %d: train MAE %s", run.epoch, np.round(record["train_mae"], 4))
        if config.max_minutes is not None and run.seconds > 60 * config.max_minutes:
            log.warning("stopping after %.1f minutes (max_minutes) at epoch %d", run.seconds / 60, run.epoch)
            break
    if bar is not None:
        bar.close()
    if state_dir is not None and saved_epoch != run.epoch:
        _save_state(state_dir, config, run, history, net, opt, best)
    if validating:
        net.load_state_dict(best)
    return run, history


def _learning_rates(config: TrainConfig, run: Progress, step: int, total: int) -> torch.Tensor:
    if config.schedule == "onecycle":
        return torch.full((config.members,), one_cycle(step, total, config.lr))
    return torch.tensor(run.lr)


def _update(run: Progress, config: TrainConfig, net: StackedNet, best: dict, val_mae: list[float]) -> None:
    state = net.state_dict()
    for k, mae in enumerate(val_mae):
        if mae < run.best_mae[k]:
            run.best_mae[k], run.best_epoch[k], run.bad_epochs[k] = mae, run.epoch, 0
            for name, tensor in state.items():
                best[name][k].copy_(tensor[k])
        else:
            run.bad_epochs[k] += 1
        if config.schedule == "plateau":  # Keras ReduceLROnPlateau semantics
            if mae < run.plateau_best[k] - config.plateau_min_delta:
                run.plateau_best[k], run.plateau_wait[k] = mae, 0
            else:
                run.plateau_wait[k] += 1
                if run.plateau_wait[k] >= config.plateau_patience:
                    run.lr[k] = max(run.lr[k] * config.plateau_factor, config.min_lr)
                    run.plateau_wait[k] = 0


@torch.no_grad()
def evaluate_members(
    net: StackedNet, x: torch.Tensor, y: torch.Tensor, bf16: bool = False, batch: int = 8192
) -> torch.Tensor:
    """Per-member MAE on standardized data, ``[members]`` (the folded inference network: the
    same function as ``net`` in eval mode, in ``x``'s dtype or bfloat16)."""

    net.eval()
    program = FoldedNet(net, torch.bfloat16 if bf16 else x.dtype)
    total = torch.zeros(net.members, device=x.device, dtype=x.dtype)
    for start in range(0, len(x), batch):
        pred = program(x[start : start + batch]).to(x.dtype)
        total += (pred - y[start : start + batch]).abs().sum(dim=1)
    return (total / len(x)).cpu()


def _save_state(state_dir: Path, config, run, history, net, opt, best) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tensors = {f"net.{k}": v for k, v in net.state_dict().items()} | {f"best.{k}": v for k, v in best.items()}
    tensors |= opt.state()
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    save_file(tensors, str(state_dir / "state.safetensors.tmp"))
    (state_dir / "state.safetensors.tmp").replace(state_dir / "state.safetensors")
    meta = {"config": asdict(config), "progress": asdict(run), "history": history}
    (state_dir / "state.json.tmp").write_text(json.dumps(meta))
    (state_dir / "state.json.tmp").replace(state_dir / "state.json")


def _load_state(state_dir: Path, config, net, opt, best):
    meta = json.loads((state_dir / "state.json").read_text())
    saved = dict(meta["config"])
    same = {k: v for k, v in asdict(config).items() if k not in ("epochs", "max_minutes")}
    if {k: saved.get(k) for k in same} != same:
        raise ValueError(f"{state_dir} holds a run with a different configuration; remove it or use another --out")
    tensors = load_file(str(state_dir / "state.safetensors"))
    for name, tensor in net.state_dict().items():
        if tensors[f"net.{name}"].shape != tensor.shape:  # e.g. another featurizer's input width
            raise ValueError(
                f"{state_dir} holds a run of a different network ({name} has shape "
                f"{tuple(tensors[f'net.{name}'].shape)}, this one {tuple(tensor.shape)}); "
                "remove it or use another --out"
            )
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    device = next(net.parameters()).device
    for k in best:
        best[k].copy_(tensors[f"best.{k}"].to(device))
    opt.load({k: v.to(device) if k != "adam_steps" else v for k, v in tensors.items() if k.startswith("adam")})
    return Progress(**meta["progress"]), meta["history"]


def _bar(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="epoch", desc="train")


__all__ = ["evaluate_members", "train"]
