"""A human-readable model card (MODEL_CARD.md) rendered from a model's card.json."""

from __future__ import annotations

import json
from pathlib import Path

from screening.datasets import sha256_of
from screening.featurizers import get_featurizer
from screening.models.config import TrainConfig
from screening.stability import StabilityModel


def render_model_card(card: dict) -> str:
    training = card.get("training", {})
    metrics = card.get("metrics", {})
    val = metrics.get("validation", {})
    half = metrics.get("validation_fp16_weights")
    data = card.get("data", {})
    counts = card.get("training_element_counts", {})
    rare = sorted((s for s, n in counts.items() if n < 50), key=lambda s: counts[s])
    defaults = TrainConfig()
    changed = {k: v for k, v in training.items() if hasattr(defaults, k) and getattr(defaults, k) != v}
    lines = [
        f"# Model card: {card['architecture']} x{card['members']} on {card['featurizer']}",
        "",
        f"An ensemble of {card['members']} {card['architecture']} networks "
        f"({card.get('parameters_per_member', 0):,} parameters each) predicting "
        f"formation energy per atom (eV/atom) from composition alone, through the "
        f"`{card['featurizer']}` featurizer ({len(get_featurizer(card['featurizer']).feature_labels())} inputs). "
        "Predictions are the members' mean; their standard deviation is the uncertainty.",
        "",
        "## How it was made",
        "",
        f"    {card.get('command') or '(command not recorded)'}",
        "",
    ]
    if card.get("merged_from"):
        lines += [
            f"Code version {card.get('code_version')}, {card.get('created')}: the members of these models, pooled "
            "(each computes what it did in its own model):",
            "",
            "| model | members | validation MAE alone | made by |",
            "|---|---|---|---|",
        ]
        for part in card["merged_from"]:
            mae = part.get("validation_mae")
            lines.append(
                f"| `{part['model']}` | {part['members']} | {'' if mae is None else f'{mae:.4f}'} | "
                f"`{part.get('command') or ''}` |"
            )
        lines += ["", f"Settings the parts share: `{changed}`.", ""]
    else:
        lines += [
            f"Code version {card.get('code_version')}, {card.get('created')}; {training.get('device')} "
            f"({training.get('machine')}), torch {training.get('torch')}; {training.get('epochs_run')} epochs in "
            f"{training.get('seconds', 0) / 60:.1f} min; "
            + (
                f"best epoch per member {training.get('best_epoch')}."
                if val
                else "the last epoch kept (no validation rows)."
            ),
            f"Training settings different from the defaults: `{changed}`.",
            "",
        ]
    lines += _data_rows(data)
    lines += ["", "## What it scores", ""]
    twin = card.get("recipe_validation")
    if not val and twin:
        lines += [
            "This model was trained on every row above, so it has no validation rows of its own. Its recipe "
            "(the same command on the training table alone, every other setting equal) was validated on a twin:",
            "",
            f"    {twin.get('command') or twin.get('model')}",
            "",
        ]
        ran = twin.get("trained_on") or {}
        if (
            ran.get("device") and ran.get("seconds") is not None
        ):  # the recipe, not the machine, is what a twin validates
            lines += [f"The twin ran on {ran['device']} (torch {ran.get('torch')}, {ran['seconds'] / 60:.1f} min).", ""]
        lines += _data_rows(twin.get("data", {}))
        lines.append("")
        val, half = (
            twin.get("metrics", {}).get("validation", {}),
            twin.get("metrics", {}).get("validation_fp16_weights"),
        )
    if val:
        lines += [
            "| weights | validation MAE | RMSE | R² | n |",
            "|---|---|---|---|---|",
            f"| float32 | {val['mae']:.4f} | {val['rmse']:.4f} | {val['r2']:.4f} | {val['n']} |",
        ]
        if half:
            lines.append(
                f"| float16 (as shipped) | {half['mae']:.4f} | {half['rmse']:.4f} | {half['r2']:.4f} | {half['n']} |"
            )
        if val.get("members_mae"):
            lines += ["", "Members alone (validation MAE): " + ", ".join(f"{m:.4f}" for m in val["members_mae"]) + "."]
    else:
        lines.append(
            "No validation: trained on every row, and no validated twin is recorded (`screening calibrate --like`)."
        )
    if card.get("uncertainty"):
        u = card["uncertainty"]
        lines += [
            "",
            f"Uncertainty: predictive std `sqrt(({u['scale']} x members' spread)^2 + {u['floor']}^2)` eV/atom, "
            f"fitted (minimum mean CRPS, {u['n']:,} rows of {u['data']}"
            + (f", {u['rows']} rows" if u.get("rows", "all") != "all" else "")
            + (f", on the validated twin {u['fitted_on_model']}" if u.get("fitted_on_model") else "")
            + ") for `p_below_known_hull`.",
        ]
    lines += _stability_lines(card.get("stability"))
    lines += [
        "",
        "For orientation, published on a held-out fold of the same data (not this validation split): "
        "CrabNet 0.075, Roost 0.079, random forest on Magpie 0.131 eV/atom.",
        "",
        "## Limits",
        "",
        "- Composition only: one energy per composition (no polymorphs, no structure).",
        "- Trained on DFT (PBE/PBE+U) formation energies of the Materials Project; errors of the "
        "functional are inherited, and hull distances from predicted energies are less certain than "
        "the formation energies themselves (errors do not cancel between competing phases).",
        f"- Elements seen in fewer than 50 training compositions (screening flags them): {', '.join(rare) or 'none'}.",
    ]
    if card.get("data", {}).get("auxiliary"):
        lines.append(
            "- The auxiliary tables above trained the shared network through output units of their own; the "
            "saved model keeps the primary table's unit, so its predictions are on that table's scale. The "
            "auxiliary rows are training rows: errors measured on them say nothing about the model."
        )
    lines += [
        "",
        "Files: `model.safetensors` (weights, feature and target standardization), `card.json` "
        "(everything above, machine-readable), `learning_curve.png`, "
        + ("`parity_val.png`, " if card.get("metrics", {}).get("validation") else "")
        + "`history.jsonl`.",
    ]
    return "\n".join(lines) + "\n"


def _stability_lines(stability: dict | None) -> list[str]:
    """The ranking part: how p_stable was fitted and what it scores in the screening situation."""
    if not stability:
        return []
    fitted, evidence = stability.get("fitted_on", {}), stability.get("evidence_stage", {})
    lines = [
        "",
        "## Ranking: p_stable",
        "",
        "`p_stable` orders a screen's `ranked.parquet`: the probability that a candidate is a stable compound, "
        "calibrated on enumerated grids (every composition of <= 10 atoms of the chemical systems of compounds "
        "unknown to the model's data"
        + (", those that hold a stable compound and those that hold none" if stability.get("null_systems") else "")
        + "). Evidence stage fitted on "
        f"{evidence.get('situations', '?')} rediscovery situations made from the known table alone "
        f"({evidence.get('candidates', 0):,} candidates, {evidence.get('stable', 0):,} stable); stacker (with "
        f"the energies of `{fitted.get('energy_model', '?')}`) and its isotonic calibration fitted on the screening "
        f"situation of `{fitted.get('hidden', '?')}` ({fitted.get('candidates', 0):,} candidates, "
        f"{fitted.get('stable', 0):,} stable, {fitted.get('systems', 0):,} systems)"
        + (f"; copied from `{stability['fitted_on_model']}`" if stability.get("fitted_on_model") else "")
        + (
            f" (validation MAE {stability['fitted_on_model_validation_mae']:.4f} eV/atom)"
            if stability.get("fitted_on_model_validation_mae")
            else ""
        )
        + ". Its figures below were measured with those energies.",
        *(["", "Fitted with:", "", f"    {stability['command']}"] if stability.get("command") else []),
        "",
        "Cross-fitted by chemical system (`bench/rediscovery.py`):",
        "",
        "| elements | candidates | prevalence | top-N precision | enrichment | recall top 1% | recall top 5% | AUC | "
        "first of system | ECE |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    grids = [("systems that hold a stable compound", stability.get("benchmark", {}))]
    if stability.get("benchmark_with_null_systems"):
        grids.append(("with the systems that hold none", stability["benchmark_with_null_systems"]))
    for name, benchmark in grids:
        for k, m in sorted(benchmark.items()):  # binaries are fitted too; the targets are on 3 and 4
            lines.append(
                f"| {k}, {name} | {m['candidates']:,} | {m['prevalence']:.2%} | {m['precision_top_n']:.3f} | "
                f"{m['enrichment_top_n']:.0f}x | {m['recall_top_1pct']:.3f} | {m['recall_top_5pct']:.3f} | "
                f"{m['auc']:.3f} | {m['first_of_system']:.3f} | {m['ece']:.4f} |"
            )
    system = stability.get("system")
    if system:
        lines.append(
            f"\nSystem level (`p_system` in a screen's `systems.parquet`): does a system hide a stable compound? "
            f"Fitted on {system['systems']:,} systems of the validation table ({system['hide_a_stable_compound']:,} "
            f"hide one), nested-cross-fitted AUC {system['auc']:.3f}, ECE {system['ece']:.3f} "
            "(`bench/ranking_null_systems.py`)."
        )
    for k, m in sorted(stability.get("null_systems", {}).items()):
        lines.append(
            f"\n{k}-element systems that hold no stable compound ({m['systems']:,}): p_stable sums to "
            f"{m['p_stable_per_system']:.2f} per system; {m['systems_with_a_candidate_at_half']:.1%} of them have a "
            "candidate at 0.5 or more."
        )
    return lines


def _data_rows(data: dict) -> list[str]:
    lines = ["| data | path | sha256 | rows used | rows rejected |", "|---|---|---|---|---|"]
    for name in ("train", "val", "auxiliary"):
        if name not in data:
            continue
        for d in _tables(data, name):
            where = d.get("path", d.get("split", d.get("none", "")))
            lines.append(
                f"| {name} | `{where}` | `{str(d.get('sha256', ''))[:16]}` | {d.get('rows_used', '')} | "
                f"{d.get('rows_rejected', '')} |"
            )
    return lines


def _tables(data: dict, name: str = "train") -> list[dict]:
    """The table entries of a card's ``data[name]``: one dict, or a list when several tables were concatenated."""
    tables = data.get(name, {})
    return tables if isinstance(tables, list) else [tables]


def write_card(model_dir: str | Path, card: dict) -> Path:
    """Replace a model's card.json (atomically) and re-render its MODEL_CARD.md."""
    card_path = Path(model_dir) / "card.json"
    tmp = card_path.with_name(".card.json.tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    tmp.replace(card_path)
    (Path(model_dir) / "MODEL_CARD.md").write_text(render_model_card(card))
    return card_path


def trained_on(card: dict, path: str | Path) -> bool:
    """Whether the table at ``path`` (by content hash) is one the model was trained on (as
    primary or auxiliary data: either way the network has learnt from its rows)."""

    data = card.get("data", {})
    tables = _tables(data) + (_tables(data, "auxiliary") if "auxiliary" in data else [])
    return sha256_of(path) in {t.get("sha256") for t in tables}


# Settings that may differ between a final model and the twin that validated its recipe.
_NOT_RECIPE = {"epochs_run", "best_epoch", "seconds", "device", "torch", "machine", "max_minutes"}


def _recipe(card: dict) -> dict:
    """The settings that make a recipe; a schedule fitted to a time budget (``max_minutes``)
    counts as the number of epochs it spanned, and auxiliary tables count by content (hash), not
    by where they lay on the machine that trained."""
    recipe = {k: v for k, v in card.get("training", {}).items() if k not in _NOT_RECIPE}
    recipe["epochs"] = recipe.pop("schedule_epochs", recipe.get("epochs"))
    if recipe.pop("auxiliary", None):
        recipe["auxiliary"] = sorted(str(t.get("sha256")) for t in _tables(card.get("data", {}), "auxiliary"))
    return recipe


def adopt_twin_validation(model_dir: str | Path, twin_dir: str | Path) -> dict:
    """A final model trained on every row (``screening train --no-val``) has no held-out rows
    to be validated or calibrated on. Its recipe can be: a twin trained the same way on a
    subset of its data (the training table without the validation table), with validation.
    This copies the twin's validation metrics (as ``recipe_validation``) and its fitted
    uncertainty into the final model's card, after checking the two really are twins: same
    network, featurizer and training settings, and the twin's training tables among the
    model's. Returns the updated card."""
    card = json.loads((Path(model_dir) / "card.json").read_text())
    twin = json.loads((Path(twin_dir) / "card.json").read_text())
    if card.get("metrics", {}).get("validation"):
        raise ValueError(
            f"{model_dir} has validation metrics of its own; calibrate it on held-out data (--data) instead"
        )
    for key in ("architecture", "d_in", "members", "featurizer"):
        if card.get(key) != twin.get(key):
            raise ValueError(f"{twin_dir} is not a twin of {model_dir}: {key} {twin.get(key)!r} vs {card.get(key)!r}")
    ours, theirs = _recipe(card), _recipe(twin)
    differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    if differ:
        raise ValueError(
            f"{twin_dir} was trained with other settings than {model_dir}: "
            + ", ".join(f"{k} {theirs.get(k)!r} vs {ours.get(k)!r}" for k in differ)
        )
    hashes = lambda c: {t.get("sha256") for t in _tables(c.get("data", {}))}  # noqa: E731
    missing = hashes(twin) - hashes(card)
    if missing:
        raise ValueError(
            f"{twin_dir} was trained on data that {model_dir} was not (sha256 {sorted(map(str, missing))})"
        )
    if not twin.get("metrics", {}).get("validation"):
        raise ValueError(f"{twin_dir} has no validation metrics: train the twin with --val")
    card["recipe_validation"] = {
        "model": str(twin_dir),
        "command": twin.get("command"),
        "data": twin.get("data"),
        "metrics": twin["metrics"],
        "created": twin.get("created"),
        "trained_on": {k: twin.get("training", {}).get(k) for k in ("device", "torch", "seconds")},
    }
    if twin.get("uncertainty"):
        card["uncertainty"] = twin["uncertainty"] | {"fitted_on_model": str(twin_dir)}
    if (Path(twin_dir) / "stability.json").exists():  # the ranking fitted with the twin's energies
        card = _copy_ranking(model_dir, twin_dir, card, twin)
    write_card(model_dir, card)
    return card


def adopt_ranking(model_dir: str | Path, source_dir: str | Path) -> dict:
    """Copy another model folder's stability model (verified first) into ``model_dir``."""
    card = json.loads((Path(model_dir) / "card.json").read_text())
    source = json.loads((Path(source_dir) / "card.json").read_text())
    if not (Path(source_dir) / "stability.json").exists():
        raise FileNotFoundError(
            f"{source_dir} holds no stability model: fit one with screening train --val ... --ranking"
        )
    card = _copy_ranking(model_dir, source_dir, card, source)
    write_card(model_dir, card)
    return card


def _copy_ranking(model_dir: str | Path, source_dir: str | Path, card: dict, source: dict) -> dict:
    import shutil

    StabilityModel.load(source_dir)  # verified before it is copied
    for name in ("stability.pkl", "stability.json"):
        shutil.copyfile(Path(source_dir) / name, Path(model_dir) / name)
    validation = source.get("metrics", {}).get("validation", {})
    return card | {
        "stability": source.get("stability", {})
        | {
            "fitted_on_model": str(source_dir),
            "fitted_on_model_command": source.get("command"),
            "fitted_on_model_validation_mae": validation.get("mae"),
        }
    }


STABILITY_RECORD = (
    "sha256",
    "fitted_on",
    "evidence_stage",
    "benchmark",
    "benchmark_with_null_systems",
    "null_systems",
    "system",
    "command",
)


def record_stability(model_dir: str | Path, record: dict) -> dict:
    """Note a model folder's stability model (how it was fitted, its benchmark figures) in its
    card and MODEL_CARD.md."""
    card = json.loads((Path(model_dir) / "card.json").read_text())
    card["stability"] = {k: record[k] for k in STABILITY_RECORD if k in record}
    write_card(model_dir, card)
    return card
