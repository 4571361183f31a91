"""A human-readable model card (MODEL_CARD.md) rendered from a model's card.json."""

from __future__ import annotations

from screening.featurizers import get_featurizer
from screening.models.training import TrainConfig


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
        f"Code version {card.get('code_version')}, {card.get('created')}; {training.get('device')} "
        f"({training.get('machine')}), torch {training.get('torch')}; {training.get('epochs_run')} epochs in "
        f"{training.get('seconds', 0) / 60:.1f} min; best epoch per member {training.get('best_epoch')}.",
        f"Training settings different from the defaults: `{changed}`.",
        "",
        "| data | path | sha256 | rows used | rows rejected |",
        "|---|---|---|---|---|",
    ]
    for name in ("train", "val"):
        d = data.get(name, {})
        lines.append(f"| {name} | `{d.get('path', d.get('split'))}` | `{str(d.get('sha256', ''))[:16]}` | {d.get('rows_used', '')} | {d.get('rows_rejected', '')} |")
    lines += [
        "",
        "## What it scores",
        "",
        "| weights | validation MAE | RMSE | R² | n |",
        "|---|---|---|---|---|",
        f"| float32 | {val.get('mae', float('nan')):.4f} | {val.get('rmse', float('nan')):.4f} | {val.get('r2', float('nan')):.4f} | {val.get('n', '')} |",
    ]
    if half:
        lines.append(f"| float16 (as shipped) | {half['mae']:.4f} | {half['rmse']:.4f} | {half['r2']:.4f} | {half['n']} |")
    if val.get("members_mae"):
        lines += ["", "Members alone (validation MAE): " + ", ".join(f"{m:.4f}" for m in val["members_mae"]) + "."]
    if card.get("uncertainty"):
        u = card["uncertainty"]
        lines += ["", f"Uncertainty: predictive std `sqrt(({u['scale']} x members' spread)^2 + {u['floor']}^2)` eV/atom, "
                  f"fitted (minimum mean CRPS, {u['n']:,} rows of {u['data']}"
                  + (f", {u['rows']} rows" if u.get("rows", "all") != "all" else "") + ") for `p_below_known_hull`."]  # fmt: skip
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
        "",
        "Files: `model.safetensors` (weights, feature and target standardization), `card.json` "
        "(everything above, machine-readable), `learning_curve.png`, `parity_val.png`, `history.jsonl`.",
    ]
    return "\n".join(lines) + "\n"
