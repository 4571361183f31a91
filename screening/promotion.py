"""Promotion: a candidate model replaces ``production`` only if it is not worse on the registry's
fixed benchmark, and the decision is recorded with its figures.

A model is judged by two things, both on the benchmark's hidden table:

* the validation MAE of its formation energies. A final model trained on every row (the hidden
  table included) cannot be judged on rows it learnt; it is judged by the twin that validated its
  recipe on exactly that table (``recipe_validation`` in its card), and refused otherwise;
* the ranking in the screening situation: the systems of the hidden stable compounds enumerated,
  the hidden compounds left out of the known hull, candidates ranked by ``p_stable`` (top-N
  precision and AUC per arity, cross-fitted by system: :mod:`screening.stability_fit`). These
  are the figures its stability model recorded when it was fitted on the benchmark's tables,
  checked by sha256; a stability model fitted on other tables is refused (its figures measure
  something else).

"Not worse" allows the tolerances below, fixed in advance: differences smaller than them are
within what retraining the same recipe with another seed moves. A candidate whose stability model
splits inside rounding noise is not promoted whatever its figures (:func:`unsound`).
"""

from __future__ import annotations

import json
from pathlib import Path

from screening import run_lock
from screening.registry import Benchmark, Registry

PRODUCTION, CANDIDATE = "production", "candidate"
ARITIES = ("3", "4")  # ternary and quaternary systems: where screening finds new compounds
TOLERANCE = {"mae": 0.001, "precision_top_n": 0.01, "auc": 0.002}  # eV/atom; fractions


class NotComparableError(ValueError):
    """A model whose figures on the registry's benchmark cannot be had honestly."""


def benchmark_figures(model_dir: str | Path, benchmark: Benchmark, device: str = "cpu") -> dict:
    """The figures a promotion compares (see the module docstring), with where each came from."""
    from screening.models.card import trained_on
    from screening.models.ensemble import load_model
    from screening.models.fit import evaluate

    card = json.loads((Path(model_dir) / "card.json").read_text())
    hidden = benchmark.hidden
    if trained_on(card, hidden.path):
        twin = card.get("recipe_validation") or {}
        if twin.get("data", {}).get("val", {}).get("sha256") != hidden.sha256:
            raise NotComparableError(
                f"{model_dir} was trained on the benchmark's {hidden.path} and no twin of its recipe was validated on "
                "it: its error there would be a training error"
            )
        mae, mae_source = twin["metrics"]["validation"]["mae"], f"its recipe's twin {twin.get('model')}"
    else:
        mae, mae_source = evaluate(load_model(str(model_dir), device), hidden.path)["mae"], "measured"
    fitted = card.get("stability", {}).get("fitted_on", {})
    known = sorted(t.sha256 for t in benchmark.known)
    if fitted.get("hidden_sha256") != hidden.sha256 or sorted(fitted.get("known_sha256", [])) != known:
        raise NotComparableError(
            f"{model_dir}: its stability model was not fitted on the benchmark's tables (hidden {hidden.path}): "
            "fit it with `screening train ... --val HIDDEN --ranking` on them"
        )
    figures = card["stability"]["benchmark"]
    ranking = {k: {m: figures[k][m] for m in ("precision_top_n", "auc", "recall_top_5pct")} for k in ARITIES}
    return {"mae": mae, "mae_source": mae_source, "ranking": ranking}


def unsound(model_dir: str | Path) -> list[str]:
    """What makes a model's ranking untrustworthy whatever its figures: a stability model whose
    classifiers split inside rounding noise (:meth:`screening.stability.StabilityModel.rounding_splits`),
    so that its probabilities depend on how their features happened to be computed."""
    from screening.stability import StabilityModel

    if not (Path(model_dir) / "stability.json").exists():
        return []
    splits = {name: found for name, found in StabilityModel.load(model_dir).rounding_splits().items() if found}
    if not splits:
        return []
    where = "; ".join(f"{name}: {', '.join(found)}" for name, found in splits.items())
    return [f"its stability model splits inside rounding noise ({where}): refit it with this version"]


def compare(candidate: dict, production: dict) -> list[str]:
    """What makes ``candidate`` worse than ``production`` beyond the tolerances (empty: not worse)."""
    worse = []
    if candidate["mae"] > production["mae"] + TOLERANCE["mae"]:
        worse.append(f"validation MAE {candidate['mae']:.4f} > {production['mae']:.4f} + {TOLERANCE['mae']}")
    for k in ARITIES:
        for metric in ("precision_top_n", "auc"):
            c, p = candidate["ranking"][k][metric], production["ranking"][k][metric]
            if c < p - TOLERANCE[metric]:
                worse.append(f"{k}-element {metric} {c:.3f} < {p:.3f} - {TOLERANCE[metric]}")
    return worse


def promote(registry: Registry, model_dir: str | Path, force: bool = False, device: str = "cpu") -> dict:
    """Register ``model_dir`` as the ``candidate``, judge it against ``production`` on the
    registry's benchmark, and make it ``production`` if it is not worse (or if there is no
    production yet, or ``force``: an operator's decision, recorded as such). Returns the record
    written to the registry's history."""
    run_lock.acquire(registry.root)  # one promotion at a time
    try:
        key = registry.register(model_dir)
        registry.set_alias(CANDIDATE, key)
        previous = registry.aliases().get(PRODUCTION)
        record = {"event": "evaluated", "candidate": key, "production": previous}
        if previous == key:
            return registry.log(record | {"promoted": False, "reasons": ["already production"]})
        benchmark, record["figures"] = registry.benchmark(), {}
        try:
            record["figures"]["candidate"] = benchmark_figures(registry.resolve(key), benchmark, device)
            if previous is not None:
                record["figures"]["production"] = benchmark_figures(registry.resolve(previous), benchmark, device)
            reasons = compare(*record["figures"].values()) if previous is not None else []
            reasons += unsound(registry.resolve(key))
        except NotComparableError as err:
            if not force:
                raise
            reasons = [str(err)]
        promoted = force or not reasons
        if promoted:
            registry.set_alias(PRODUCTION, key)
        outcome = {"event": "promoted" if promoted else "evaluated", "promoted": promoted}
        outcome |= {"forced": force and bool(reasons), "reasons": reasons, "tolerance": TOLERANCE}
        return registry.log(record | outcome)
    finally:
        run_lock.release(registry.root)
