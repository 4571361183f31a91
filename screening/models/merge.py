"""Pool the members of several trained ensembles into one model.

Members trained in separate runs (other seeds or settings, other machines: the tasks of a
cluster's array job, several GPU sessions) are ensemble members like those trained together,
and pooling them is the cheapest accuracy there is once they exist. A pooled member must
compute exactly what it computed in its own model, so the parts must be the same network on
the same inputs with the same standardization, which means trained on the same tables; the
stacked weights are then concatenated member-wise and nothing is refitted. The pooled model is
re-validated on the parts' shared validation table when there is one; its uncertainty is not
carried over (more members spread differently): re-fit it with ``screening calibrate``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from screening import __version__
from screening.datasets import read_formula_table, sha256_of
from screening.models.architectures import StackedNet
from screening.models.card import render_model_card
from screening.models.ensemble import WEIGHTS, Ensemble
from screening.models.fit import featurize_targets
from screening.models.metrics import regression_metrics


def _tables_by_hash(card: dict, name: str) -> list[str]:
    tables = card.get("data", {}).get(name, [])
    return sorted(str(t.get("sha256")) for t in (tables if isinstance(tables, list) else [tables]) if t.get("sha256"))


def check_poolable(first: Ensemble, other: Ensemble, first_dir: str, other_dir: str) -> None:
    """Raise ``ValueError`` naming what differs when ``other``'s members cannot join ``first``'s."""
    why = f"{other_dir} cannot be pooled with {first_dir}"
    for key in ("architecture", "d_in", "featurizer"):
        if other.card.get(key) != first.card.get(key):
            raise ValueError(f"{why}: {key} {other.card.get(key)!r} vs {first.card.get(key)!r}")
    for name in ("train", "auxiliary"):
        if _tables_by_hash(other.card, name) != _tables_by_hash(first.card, name):
            raise ValueError(f"{why}: trained on other {name} tables (by sha256); pool models trained on the same rows")
    gap = float(
        max((other.feature_mean - first.feature_mean).abs().max(), (other.feature_std - first.feature_std).abs().max())
    )
    targets = np.array([other.target_mean - first.target_mean, other.target_std - first.target_std])
    if gap > 1e-5 * float(first.feature_std.abs().max()) or np.abs(targets).max() > 1e-6:
        raise ValueError(
            f"{why}: their input or target standardization differs (largest gap "
            f"{max(gap, np.abs(targets).max()):.3g}); "
            "pool models trained on the same rows"
        )


def merge_models(
    model_dirs: Sequence[str], out_dir: str, half: bool | None = None, command: str | None = None
) -> tuple[Ensemble, dict]:
    """Pool the members of ``model_dirs`` (in that order) into one model written to ``out_dir``;
    float16 storage if every part was stored so (or as ``half`` says). Returns the model and its
    validation metrics (empty when the parts share no validation table that is still there)."""
    if len(model_dirs) < 2:
        raise ValueError("give at least two models to pool")
    digests = [sha256_of(Path(d) / WEIGHTS) if (Path(d) / WEIGHTS).exists() else d for d in model_dirs]
    for i, digest in enumerate(digests):
        if digest in digests[:i]:  # the same members twice would fake agreement
            raise ValueError(
                f"{model_dirs[i]} holds the same weights as {model_dirs[digests.index(digest)]}: pool different runs"
            )
    parts = [Ensemble.load(d, "cpu") for d in model_dirs]
    for d, part in zip(model_dirs[1:], parts[1:]):
        check_poolable(parts[0], part, model_dirs[0], d)
    first = parts[0]
    members = sum(p.members for p in parts)
    net = StackedNet(first.net.arch, first.net.d_in, members)
    states = [p.net.state_dict() for p in parts]
    net.load_state_dict({k: torch.cat([s[k] for s in states]) for k in states[0]})
    common = {
        k: v
        for k, v in first.card.get("training", {}).items()
        if all(p.card.get("training", {}).get(k) == v for p in parts) and k not in ("members", "best_epoch", "seconds")
    }
    card = {
        "format": first.card.get("format", "screening-ensemble/1"),
        "architecture": first.card["architecture"],
        "d_in": first.card["d_in"],
        "members": members,
        "parameters_per_member": first.card.get("parameters_per_member"),
        "featurizer": first.featurizer,
        "target": first.card.get("target"),
        "training": common | {"members": members},
        "merged_from": [
            {
                "model": str(d),
                "members": p.members,
                "weights_sha256": digest,
                "command": p.card.get("command"),
                "created": p.card.get("created"),
                "training": p.card.get("training"),
                "validation_mae": p.card.get("metrics", {}).get("validation", {}).get("mae"),
            }
            for d, p, digest in zip(model_dirs, parts, digests)
        ],
        "data": first.card.get("data"),
        "training_element_counts": first.card.get("training_element_counts", {}),
        "code_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "metrics": {},
    }
    if half is None:
        half = all(p.card.get("weights_dtype") == "float16" for p in parts)
    out = Path(out_dir)
    Ensemble(net, first.feature_mean, first.feature_std, first.target_mean, first.target_std, card).save(out, half=half)
    model = Ensemble.load(out, "cpu")  # validated as stored
    metrics = _validate_on_shared_table(model, parts)
    if metrics:
        model.card["metrics"] = {"validation": metrics}
        model.save(out, half=half)

    (out / "MODEL_CARD.md").write_text(render_model_card(model.card))
    return model, metrics


def _validate_on_shared_table(model: Ensemble, parts: list[Ensemble]) -> dict:
    """Metrics on the validation table every part was validated on, if it is still where the
    cards say and unchanged; else ``{}``."""

    tables = [p.card.get("data", {}).get("val", {}) for p in parts]
    path, digest = tables[0].get("path"), tables[0].get("sha256")
    if (
        not path
        or any(t.get("sha256") != digest for t in tables)
        or not Path(path).exists()
        or sha256_of(path) != digest
    ):
        return {}
    x, y, _, _ = featurize_targets(read_formula_table(path), model.featurizer, path)
    mean, _, each = model.predict(x)
    return regression_metrics(y, mean) | {"members_mae": [regression_metrics(y, m)["mae"] for m in each]}
