"""From tables of ``formula, target`` to a trained, saved, documented ensemble. (Loading and
predicting live with the ensemble, :mod:`screening.models.ensemble`: screening never imports this.)"""

from __future__ import annotations

import datetime as dt
import logging
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from screening import __version__
from screening.composition import Rejection, parse_formulas
from screening.datasets import finite_targets, read_formula_table, require_target, sha256_of
from screening.elements import SYMBOLS
from screening.featurizers import get_featurizer
from screening.models.architectures import StackedNet, parameters_per_member
from screening.models.calibration import fit_spread
from screening.models.card import render_model_card, trained_on
from screening.models.config import TrainConfig
from screening.models.ensemble import Ensemble, resolve_device
from screening.models.metrics import regression_metrics
from screening.models.training import STATE_DIR, member_seeds, train
from screening.plots import learning_curve, parity_plot

log = logging.getLogger(__name__)


def featurize_targets(
    frame: pd.DataFrame, featurizer: str, source: str
) -> tuple[np.ndarray, np.ndarray, list[str], list[Rejection]]:
    """Features and targets of the usable rows; rows with unusable formulas or targets are
    returned as rejections (never silently dropped)."""
    require_target(frame, source)
    table = get_featurizer(featurizer).featurize_frame_float32(frame)
    ok, target, bad = finite_targets(frame, table.index, table.formula)
    rejections = sorted(list(table.rejections) + bad, key=lambda r: r.index)
    return table.values[ok], target, list(table.formula[ok]), rejections


@dataclass
class TrainingData:
    """Featurized training and validation rows, with where they came from."""

    featurizer: str
    x_train: np.ndarray
    y_train: np.ndarray
    train_formulas: list[str]
    x_val: np.ndarray
    y_val: np.ndarray
    val_formulas: list[str] | None  # None: the validation rows are a split of train
    data_card: dict
    rejected: dict[str, int]
    held_out_formulas: list[str] = field(default_factory=list)  # the validation rows' formulas, however chosen
    auxiliary: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (x, y) per auxiliary source
    title: str = "training data"  # the training tables, for the plots


def _composition_keys(formulas: Sequence[str]) -> set[str]:
    return set(parse_formulas(list(formulas))[0].composition_keys()) if len(formulas) else set()


def _not_among(formulas: Sequence[str], keys: set[str]) -> np.ndarray:
    """Which rows' reduced compositions are not among ``keys`` (the held-out rows': a row of another
    table with the same composition would leak into the validation score)."""
    if not keys or not len(formulas):
        return np.ones(len(formulas), dtype=bool)
    return np.array([k not in keys for k in parse_formulas(list(formulas))[0].composition_keys()], dtype=bool)


def _as_paths(train_path: str | Path | Sequence[str]) -> list:
    return [train_path] if isinstance(train_path, (str, Path)) else list(train_path)


def prepare_data(
    train_path: str | Sequence[str],
    val_path: str | None,
    featurizer: str,
    seed: int,
    out_dir: str,
    holdout: bool = True,
    auxiliary: Sequence[str] = (),
) -> TrainingData:
    """Featurize the training table(s) (several are concatenated, e.g. a final model on
    train + val) and the validation table; rows that cannot be used are written to
    ``rejected_{train,val}.csv`` in ``out_dir``; training rows whose composition is among the
    validation table's are dropped (counted in the card). Without a validation table, 10% of the
    training rows (seeded) are held out, unless ``holdout`` is False: then every row trains
    and there is no validation (the recipe must have been validated on another run)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = _as_paths(train_path)
    if not paths:
        raise ValueError("no training table given")
    if val_path and not holdout:
        raise ValueError(f"a validation table ({val_path}) was given with holdout=False")
    parts = [featurize_targets(read_formula_table(p), featurizer, p) for p in paths]
    dropped = [0] * len(parts)
    validation = featurize_targets(read_formula_table(val_path), featurizer, val_path) if val_path else None
    if validation:  # a training row with a validation composition (another table's value for it) would leak
        val_keys = _composition_keys(validation[2])
        for i, (x, y, formulas, bad) in enumerate(parts):
            keep = _not_among(formulas, val_keys)
            parts[i], dropped[i] = (x[keep], y[keep], [f for f, k in zip(formulas, keep) if k], bad), int((~keep).sum())
    x_train = np.concatenate([part[0] for part in parts])
    y_train = np.concatenate([part[1] for part in parts])
    train_formulas = [f for part in parts for f in part[2]]
    rejected = [(str(p), r) for p, part in zip(paths, parts) for r in part[3]]
    d = x_train.shape[1]
    held_out: list[str] = []
    if val_path:
        x_val, y_val, val_formulas, val_rejected = validation
        held_out = val_formulas
    elif holdout:
        order = np.random.default_rng(seed).permutation(len(x_train))
        cut = max(1, len(order) // 10)
        x_val, y_val = x_train[order[:cut]], y_train[order[:cut]]
        held_out = [train_formulas[i] for i in order[:cut]]
        train_formulas = [train_formulas[i] for i in order[cut:]]
        x_train, y_train = x_train[order[cut:]], y_train[order[cut:]]
        val_formulas, val_rejected = None, []
    else:
        x_val, y_val, val_formulas, val_rejected = np.zeros((0, d), np.float32), np.zeros(0), None, []
    for name, rows in (("train", rejected), ("val", [(str(val_path), r) for r in val_rejected])):
        if rows:
            pd.DataFrame([{"table": t} | asdict(r) for t, r in rows]).to_csv(out / f"rejected_{name}.csv", index=False)
            log.warning("%d %s rows could not be used; see %s", len(rows), name, out / f"rejected_{name}.csv")
    tables = [
        {"path": str(p), "sha256": sha256_of(p), "rows_used": int(len(part[1])), "rows_rejected": len(part[3])}
        | ({"rows_dropped_as_validation_compositions": n} if n else {})
        for p, part, n in zip(paths, parts, dropped)
    ]
    if len(paths) == 1 and holdout and not val_path:
        tables[0]["rows_used"] = int(len(y_train))
    if val_path:
        val_card = {
            "path": str(val_path),
            "sha256": sha256_of(val_path),
            "rows_used": int(len(y_val)),
            "rows_rejected": len(val_rejected),
        }
    elif holdout:
        val_card = {"split": "10% of train, seeded", "rows_used": int(len(y_val))}
    else:
        val_card = {
            "none": "every row trained; no held-out rows (the recipe was validated on another run)",
            "rows_used": 0,
        }
    data_card = {"train": tables[0] if len(tables) == 1 else tables, "val": val_card}
    data = TrainingData(
        get_featurizer(featurizer).spec(),
        x_train,
        y_train,
        train_formulas,
        x_val,
        y_val,
        val_formulas,
        data_card,
        {"train": len(rejected), "val": len(val_rejected)},
        held_out_formulas=held_out,
        title=" + ".join(f"{Path(p).parent.name}/{Path(p).name}" for p in _as_paths(train_path)),
    )
    return add_auxiliary(data, auxiliary, out_dir)


def add_auxiliary(data: TrainingData, paths: Sequence[str], out_dir: str) -> TrainingData:
    """Tables of other data sources (e.g. OQMD beside Materials Project formation energies):
    they train the shared network through an output unit of their own, so the network learns
    from their chemistry without taking on their offsets from the primary source (another
    functional, other reference energies); the saved model keeps the primary unit only.
    Auxiliary rows whose composition is among the validation rows are dropped (and counted):
    another database's value for the same composition would leak into the validation score."""
    if not paths:
        return data

    held_out = _composition_keys(data.held_out_formulas)
    auxiliary, tables, rejected = [], [], []
    for path in paths:
        x, y, formulas, rejections = featurize_targets(read_formula_table(path), data.featurizer, path)
        keep = _not_among(formulas, held_out)
        auxiliary.append((x[keep], y[keep]))
        rejected += [(str(path), r) for r in rejections]
        tables.append(
            {
                "path": str(path),
                "sha256": sha256_of(path),
                "rows_used": int(keep.sum()),
                "rows_rejected": len(rejections),
                "rows_dropped_as_validation_compositions": int((~keep).sum()),
            }
        )
    if rejected:
        target = Path(out_dir) / "rejected_auxiliary.csv"
        pd.DataFrame([{"table": t} | asdict(r) for t, r in rejected]).to_csv(target, index=False)
        log.warning("%d auxiliary rows could not be used; see %s", len(rejected), target)
    return replace(
        data,
        auxiliary=auxiliary,
        data_card=data.data_card | {"auxiliary": tables},
        rejected=data.rejected | {"auxiliary": len(rejected)},
    )


def fit(
    data: TrainingData,
    config: TrainConfig,
    out_dir: str,
    device: str = "auto",
    progress: bool = True,
    half: bool = False,
    command: str | None = None,
    title: str | None = None,
) -> tuple[Ensemble, dict]:
    """Train the ensemble on prepared data; write the model directory (weights, card, model
    card, learning curve, parity plot); return the model and its validation metrics."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_val, y_val = data.x_train, data.y_train, data.x_val, data.y_val
    dev = resolve_device(device)
    y_mean, y_std = float(y_train.mean()), float(y_train.std())  # the primary source's
    source = None
    if data.auxiliary:  # every source's rows train; source k > 0 through output unit k
        source = np.concatenate(
            [np.full(len(y), k, np.int64) for k, (_, y) in enumerate([(x_train, y_train)] + data.auxiliary)]
        )
        x_train = np.concatenate([x_train] + [x for x, _ in data.auxiliary])
        y_train = np.concatenate([y_train] + [y for _, y in data.auxiliary])
    mean = x_train.astype(np.float64).mean(axis=0)
    std = x_train.astype(np.float64).std(axis=0)
    std[std < 1e-8] = 1.0  # constant features (an element absent from training) stay at 0
    to = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=dev)  # noqa: E731
    net = StackedNet(config.architecture, x_train.shape[1], config.members, heads=1 + len(data.auxiliary))
    net.reset_parameters(member_seeds(config))
    net.to(dev)
    run, history = train(
        net,
        (to(x_train) - to(mean)) / to(std),
        (to(y_train) - y_mean) / y_std,
        (to(x_val) - to(mean)) / to(std),
        (to(y_val) - y_mean) / y_std,
        config,
        out / STATE_DIR,
        target_std=y_std,
        progress=progress,
        source=None if source is None else torch.as_tensor(source, device=dev),
    )
    net.keep_primary_head()

    card = {
        "format": "screening-ensemble/1",
        "architecture": net.arch.name,
        "d_in": int(x_train.shape[1]),
        "members": config.members,
        "parameters_per_member": parameters_per_member(net),
        "featurizer": data.featurizer,
        "target": {"mean": y_mean, "std": y_std},
        "training": asdict(config)
        | {
            "epochs_run": run.epoch,
            "best_epoch": run.best_epoch,
            "seconds": round(run.seconds, 1),
            "schedule_epochs": run.planned_epochs or config.epochs,
            "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
            "torch": torch.__version__,
            "machine": platform.machine(),
        }
        | ({"auxiliary": [t["path"] for t in data.data_card["auxiliary"]]} if data.auxiliary else {}),
        "data": data.data_card,
        "training_element_counts": element_counts(data.train_formulas),
        "code_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
    }
    model = Ensemble(net, to(mean), to(std), y_mean, y_std, card)
    if not len(y_val):  # a final model on every row: no validation, no calibration of its own
        card["metrics"] = {}
        model.save(out, half=half)
        pd.DataFrame(history).to_json(out / "history.jsonl", orient="records", lines=True)

        (out / "MODEL_CARD.md").write_text(render_model_card(card))
        learning_curve(
            history, out / "learning_curve.png", f"{net.arch.name} x{config.members} on {title or data.title}"
        )
        return model, {}
    mean_pred, spread, members = model.predict(x_val)
    metrics = regression_metrics(y_val, mean_pred) | {
        "members_mae": [regression_metrics(y_val, m)["mae"] for m in members]
    }
    card["metrics"] = {"validation": metrics}
    if (
        config.members > 1 and len(y_val) >= 100
    ):  # the spread needs calibrating (screening calibrate re-fits it on other data)
        card["uncertainty"] = fit_spread(y_val - mean_pred, spread) | {"data": "the validation rows", "rows": "all"}
    model.save(out, half=half)
    if half:  # report what the shipped fp16 weights score, not the fp32 ones
        model = Ensemble.load(out, dev)
        metrics_half = regression_metrics(y_val, model.predict(x_val)[0])
        card["metrics"]["validation_fp16_weights"] = metrics_half
        model.card = card
        model.save(out, half=True)
    pd.DataFrame(history).to_json(out / "history.jsonl", orient="records", lines=True)

    (out / "MODEL_CARD.md").write_text(render_model_card(card))
    learning_curve(history, out / "learning_curve.png", f"{net.arch.name} x{config.members} on {title or data.title}")
    parity_plot(
        y_val, mean_pred, out / "parity_val.png", f"{net.arch.name} x{config.members}: validation", metrics=metrics
    )
    if data.val_formulas is not None:
        pd.DataFrame({"formula": data.val_formulas, "target": y_val, "pred_mean": mean_pred}).to_parquet(
            out / "val_predictions.parquet"
        )
    return model, metrics


def evaluate(model: Ensemble, data_path: str, plot: str | Path | None = None) -> dict:
    """MAE, RMSE, R² of ``model`` on a ``formula,target`` table (rows it cannot use are
    counted), and a parity plot when ``plot`` is given."""
    x, y, _, rejected = featurize_targets(read_formula_table(data_path), model.featurizer, data_path)
    if not len(y):
        raise ValueError(f"no usable rows in {data_path} ({len(rejected)} rejected)")
    mean, _, _ = model.predict(x)

    metrics = regression_metrics(y, mean) | {
        "rows_rejected": len(rejected),
        "trained_on_these_rows": trained_on(model.card, data_path),
    }
    if plot is not None:
        parity_plot(
            y, mean, plot, f"{model.card['architecture']} x{model.members} on {Path(data_path).name}", metrics=metrics
        )
    return metrics


def element_counts(formulas) -> dict[str, int]:
    """Training compositions containing each element: screening flags candidates with elements
    the model has barely seen (their predictions are extrapolations)."""

    batch, _ = parse_formulas(list(formulas))
    counts = np.bincount(batch.z.ravel(), minlength=len(SYMBOLS) + 1)[1:]
    return {s: int(c) for s, c in zip(SYMBOLS, counts) if c}
