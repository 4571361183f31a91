"""Prefect flow ``train-models``: featurize a training table, train an ensemble (its members
train together as one stacked network: one pass of the data trains all K), evaluate it, and
write the model directory with its card. A thin layer over :mod:`screening.models.fit`.

    python -m flows train-models -p train=data.csv -p val=val.csv -p out=models/x -p epochs=200
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote
from pydantic import Field

from flows._common import library_logs, picture_artifact, retry_on_io
from flows.promote_model import promote_model
from screening.datasets import data_path
from screening.models.config import RECIPE_FEATURES, TrainConfig
from screening.models.fit import TrainingData, evaluate, fit, prepare_data
from screening.registry import Registry


@task(name="featurize", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=retry_on_io)
def featurize_task(
    train: str | list[str],
    val: str | None,
    features: str,
    seed: int,
    out: str,
    holdout: bool,
    aux: list[str] | None = None,
) -> TrainingData:
    return prepare_data(train, val, features, seed, out, holdout=holdout, auxiliary=aux or ())


@task(name="train", cache_policy=NO_CACHE)
def train_task(data: TrainingData, config: TrainConfig, out: str, device: str, half: bool) -> dict:
    # Training resumes from out/train_state after an interruption, so a re-run continues.
    with library_logs(get_run_logger()):  # one line per epoch with the members' validation MAE
        model, metrics = fit(data, config, out, device=device, progress=False, half=half, title=Path(out).name)
    return {"validation": metrics, "card": model.card}


@task(name="evaluate", cache_policy=NO_CACHE, retries=1, retry_condition_fn=retry_on_io)
def evaluate_task(out: str, test: str, device: str) -> dict:
    from screening.models.ensemble import load_model

    return evaluate(load_model(out, device), test, Path(out) / "parity_test.png")


@task(name="ranking", cache_policy=NO_CACHE)
def ranking_task(out: str, train: list[str], val: str) -> dict:
    """The stability model (p_stable, p_system), fitted on the validation table's screening situation."""
    from screening.models.card import record_stability
    from screening.stability_fit import fit_stability

    logger = get_run_logger()
    fitted = fit_stability(out, train, val, Path(out) / "rediscovery", log=logger.info, system_level=True)
    fitted.model.save(out)
    record_stability(out, fitted.model.record)
    return fitted.model.record["benchmark"]


@flow(name="train-models", log_prints=True)
def train_models(
    train: str | list[str],
    out: str,
    val: str | None = None,
    holdout: bool = True,
    test: str | None = None,
    aux: list[str] | None = None,
    arch: str = TrainConfig.architecture,
    features: str = RECIPE_FEATURES,
    members: Annotated[int, Field(ge=1, le=64)] = TrainConfig.members,
    epochs: Annotated[int, Field(ge=1)] = TrainConfig.epochs,
    batch_size: Annotated[int, Field(ge=1)] = 512,
    lr: Annotated[float, Field(gt=0)] = 1e-3,
    weight_decay: Annotated[float | None, Field(ge=0)] = None,
    bf16: bool = False,
    torch_compile: bool = False,
    half: bool = True,
    device: str = "auto",
    seed: int = 0,
    max_minutes: Annotated[float | None, Field(gt=0)] = None,
    ranking: bool = False,
    registry: str | None = None,
    feedback: str | None = None,
) -> dict:
    """Train a ``members``-member ensemble of ``arch`` on ``train`` (formula,target; several
    tables are concatenated), validated on ``val`` (default: 10% of train; ``holdout=False``:
    none, every row trains and the last epoch is kept, for a final model whose recipe was
    validated on another run), optionally tested on ``test``; ``aux``: tables of other sources
    (e.g. OQMD) that train the network through an output unit of their own; writes ``out`` (where
    ``{date}`` becomes the run's UTC date; table paths starting with ``{data}`` are read from
    ``$SCREENING_DATA_DIR``, default ``../shared/data`` beside the project). ``max_minutes`` fits
    the one-cycle schedule to a wall-time budget (as many of ``epochs`` as the machine's pace
    allows, ending annealed).
    ``ranking`` (with ``val``): also fit the stability model that orders screens by p_stable.
    ``registry``: then offer the model for promotion there (the ``promote-model`` flow: it becomes
    production only if it is not worse on the registry's benchmark). ``feedback``: a folder of new
    DFT results (a campaign's, ``formula,target`` CSVs) that join the training rows (those with a
    validation composition are dropped, so the benchmark stays held out)."""
    if ranking and not val:
        raise ValueError("ranking=True needs a val table: the stability model is fitted on its screening situation")
    if registry:
        Registry(registry)  # a missing registry fails here, before hours of training
    out = out.replace("{date}", dt.datetime.now(dt.UTC).date().isoformat())
    train = data_path(train) if isinstance(train, str) else [data_path(p) for p in train]
    val, test = (data_path(p) if p else p for p in (val, test))
    aux = [data_path(p) for p in aux] if aux else aux
    known = [train] if isinstance(train, str) else list(train)  # the ranking's known compounds: the benchmark's
    if feedback and Path(data_path(feedback)).is_dir():
        train = known + [str(p) for p in sorted(Path(data_path(feedback)).glob("*.csv"))]
    config = TrainConfig.for_architecture(
        arch,
        members=members,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        bf16=bf16,
        compile=torch_compile,
        seed=seed,
        max_minutes=max_minutes,
    )
    data = featurize_task(train, val, features, seed, out, holdout, aux)
    result = train_task(quote(data), config, out, device, half)
    metrics = {"validation": result["validation"]} if result["validation"] else {}
    if test:
        metrics["test"] = evaluate_task(out, test, device)
    if ranking:
        metrics["ranking"] = ranking_task(out, known, val)
    publish_artifacts(out, metrics, result["card"])
    scores = (
        ", ".join(f"{split} MAE {m['mae']:.4f} eV/atom" for split, m in metrics.items() if split != "ranking")
        or "no held-out rows"
    )
    print(f"trained {arch} x{members} on {features}: {scores} -> {out}")
    if registry:
        metrics["promotion"] = promote_model(registry, out, device="cpu")
    return metrics


def publish_artifacts(out: str, metrics: dict, card: dict) -> None:
    rows = [
        {"split": split, **{k: round(v, 5) for k, v in m.items() if k in ("mae", "rmse", "r2")}, "n": m.get("n")}
        for split, m in metrics.items()
        if split != "ranking"
    ]
    for k, m in metrics.get("ranking", {}).items():  # p_stable in the screening situation (cross-fitted)
        rows.append(
            {
                "split": f"p_stable, {k}-element grids",
                "top_n_precision": round(m["precision_top_n"], 4),
                "recall_top_5pct": round(m["recall_top_5pct"], 4),
                "auc": round(m["auc"], 4),
                "ece": round(m["ece"], 5),
                "n": m["candidates"],
            }
        )
    create_table_artifact(
        key="model-metrics",
        table=rows,
        description=f"{card['architecture']} x{card['members']} ({card['featurizer']}), eV/atom",
    )
    training = card["training"]
    validation = metrics.get("validation")
    scores = (
        f"- validation MAE **{validation['mae']:.4f} eV/atom** (members "
        f"{', '.join(f'{m:.4f}' for m in validation['members_mae'])})\n"
        if validation
        else "- trained on every row: no validation of its own\n"
    )
    create_markdown_artifact(
        key="model-card",
        markdown=(
            f"### {card['architecture']} x{card['members']} on {card['featurizer']}\n\n"
            + scores
            + f"- {training['epochs_run']} epochs (best {training['best_epoch']}), {training['seconds']:.0f} s on "
            f"{training['device']}\n"
            f"- model directory: [{out}]({Path(out).resolve().as_uri()}); card: `card.json`, `MODEL_CARD.md`\n"
        ),
    )
    for name in ("parity_val.png", "parity_test.png"):
        picture = Path(out) / name
        if picture.exists():
            picture_artifact(picture, name[:-4].replace("_", "-"), f"Parity plot ({name[7:-4]} set)")
