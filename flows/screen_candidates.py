"""Prefect flow ``screen-candidates``: a thin layer over :mod:`screening.screen`.

Tasks: ``plan`` (validate, count the space, load the model card and the known compounds, build
their hull), ``score`` (enumerate, featurize, score and place every chunk against the known hull,
on Dask: the scheduler at ``scheduler``, or a local cluster started while the run is planned) and
``rank`` (combined hull, its parts on the scheduler if one was given; ranking, tables, hull
pictures). Each chunk's Parquet file is its own checkpoint, so a retried task or a re-run into
the same ``out`` redoes only what was not written. The Dask workers run plain library code and
never talk to Prefect (no per-worker ephemeral API, no lock contention).

    python -m flows screen-candidates -p elements='["Li","Mn","O"]' -p model=data/models/default -p out=runs/x
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote
from pydantic import Field

from flows._common import library_logs, picture_artifact, retry_on_io
from flows.screen_early import screen_request
from screening.columns import Col
from screening.ranking import print_top
from screening.request import ScreenRequest
from screening.screen import finish, run_cluster, score, weighed_by_p_system
from screening.screen_plan import ScreenPlan, plan

PROGRESS_STEP = 0.1  # report progress every 10% of the space, not every chunk


@task(name="plan", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=retry_on_io)
def plan_task(request: ScreenRequest) -> ScreenPlan:
    with library_logs(get_run_logger()):  # what is screened, rejected reference rows
        return plan(request)


@task(name="score", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=retry_on_io)
def score_task(prepared: ScreenPlan, scheduler: str | None, workers: int | None) -> dict:
    artifact = create_progress_artifact(0.0, key="screening-progress", description=f"{prepared.total:,} candidates")
    logger, started, last = get_run_logger(), time.perf_counter(), [0.0]

    def report(done: int, total: int, resumed: int = 0) -> None:
        if done == total or done / total - last[0] >= PROGRESS_STEP:
            last[0] = done / total
            update_progress_artifact(artifact, 100.0 * done / total)
            fresh = done - resumed  # chunks already on disk are skipped, not scored: no rate for them
            rate = f", {fresh / max(time.perf_counter() - started, 1e-9):,.0f}/s" if fresh else ""
            kept = f", {resumed:,} already on disk" if resumed else ""
            logger.info(
                "%s of %s candidates done (%.0f%%%s%s)", f"{done:,}", f"{total:,}", 100.0 * done / total, kept, rate
            )

    return score(prepared, scheduler=scheduler, workers=workers, progress=False, on_chunk=report)


@task(name="rank", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=retry_on_io)
def rank_task(prepared: ScreenPlan, counts: dict, seconds: float, scheduler: str | None = None) -> dict:
    return finish(prepared, counts, seconds, scheduler)


@flow(name="screen-candidates", log_prints=True)
def screen_candidates(
    model: str,
    out: str,
    elements: list[str] | None = None,
    systems: list[list[str]] | None = None,
    max_arity: Annotated[int, Field(ge=2, le=5)] = ScreenRequest.max_arity,
    min_arity: Annotated[int, Field(ge=2, le=5)] = ScreenRequest.min_arity,
    max_atoms: Annotated[int | None, Field(ge=1)] = ScreenRequest.max_atoms,
    max_amount: Annotated[int | None, Field(ge=1)] = ScreenRequest.max_amount,
    charge_neutral: bool = ScreenRequest.charge_neutral,
    exclude_known: bool = ScreenRequest.exclude_known,
    reference: list[str] | None = None,
    chunk_size: Annotated[int, Field(ge=1)] = ScreenRequest.chunk_size,
    top_k: Annotated[int, Field(ge=1)] = ScreenRequest.top_k,
    device: str = ScreenRequest.device,
    bf16: bool = ScreenRequest.bf16,
    scheduler: str | None = None,
    workers: Annotated[int | None, Field(ge=0)] = None,
    max_candidates: Annotated[int | None, Field(ge=1)] = None,
) -> dict:
    """Screen a chemical space: every composition of ``elements`` (systems of min_arity..max_arity
    of them) or of the explicit ``systems`` on the stoichiometry grid, scored by the ensemble in
    ``model`` against the hull of the ``reference`` compounds, ranked by ``p_stable`` (with a model
    that has a stability model; else by predicted distance to that hull). Spaces over 20 million
    candidates need ``max_candidates`` (their size, output and time are reported first).
    ``scheduler``: a Dask scheduler address (default: a local cluster of ``workers``).
    ``{date}`` in ``out`` becomes the run's UTC date: a scheduled deployment writes one folder
    per day, and a retry on the same day resumes it. A ``reference`` path starting with ``{data}``
    is read from ``$SCREENING_DATA_DIR`` (default: ``../shared/data`` beside the project)."""
    request = screen_request(locals())
    started = time.perf_counter()
    with run_cluster(request, scheduler, workers) as place:  # a local cluster's workers start while planning
        prepared = plan_task(request)
        # quote(): the plan holds the known hull; Prefect need not walk it looking for futures
        counts = score_task(quote(prepared), place.address, workers)
    # The ranking's parts go to a scheduler the user gave (many workers); a local cluster is
    # closed first: on one machine its workers would contend with each other, and hold memory.
    summary = rank_task(quote(prepared), counts, time.perf_counter() - started, scheduler)
    publish_artifacts(summary, model)
    pictures = ", ".join(Path(p).name for p in summary["outputs"]["hull_pictures"])
    systems = ""
    if "systems" in summary["outputs"]:
        best = pd.read_parquet(summary["outputs"]["systems"]).head(3)
        systems = (
            "systems.parquet (p_system: does a system hide a stable compound? most likely: "
            + ", ".join(f"{c} {p:.2f}" for c, p in zip(best[Col.chemsys], best["p_system"]))
            + "), "
        )
    print(
        f"screened {summary['candidates']:,} candidates in {summary['seconds']:.0f} s: {summary['scored']:,} scored, "
        f"{summary['below_known_hull']:,} predicted below the hull of known compounds"
        + (
            f"; p_stable expects {summary['expected_stable']:,.1f} stable compounds among them all"
            f"{weighed_by_p_system(summary)}, {summary['likely_stable']:,} candidates at p_stable >= 0.5\n"
            if summary.get("expected_stable") is not None
            else "\n"
        )
        + f"outputs in {out}/: ranked.parquet (every candidate, ranked), top.csv and top.md (best {top_k}), "
        f"top_by_system.csv, {systems}{pictures}, summary.json\n"
        f"best candidates (eV/atom):\n{print_top(pd.read_csv(summary['outputs']['top']), 10)}"
    )
    return summary


def publish_artifacts(summary: dict, model: str) -> None:
    """The run's top candidates, a summary, links to its outputs and its best hull picture."""
    top = pd.read_csv(summary["outputs"]["top"]).head(20)
    by_p = Col.p_stable in top.columns
    columns = [
        "rank",
        "formula",
        Col.chemsys,
        *([Col.p_stable] if by_p else []),
        Col.e_form_pred,
        Col.e_form_std,
        Col.e_above_known_hull,
        Col.p_below_known_hull,
        Col.known_decomposition,
    ]
    create_table_artifact(
        key="top-candidates",
        table=top[columns].round(4).to_dict("records"),
        description="Best candidates by "
        + (
            "probability of being stable (p_stable); energies in eV/atom"
            if by_p
            else "predicted distance to the known hull (eV/atom)"
        ),
    )
    outputs = summary["outputs"]
    if "systems" in outputs:  # the stability model's system-level classifier
        systems = pd.read_parquet(outputs["systems"]).head(20)
        shown = [Col.chemsys, "p_system", "p_stable_max", "p_stable_sum", "candidates"]
        create_table_artifact(
            key="likely-systems",
            table=systems[shown].round(4).to_dict("records"),
            description="Systems most likely to hide a stable compound the data lacks (p_system); p_stable ranks "
            "candidates as if each did",
        )
    links = "\n".join(
        f"- {name}: [{path}]({Path(path).resolve().as_uri()})"
        for name, path in outputs.items()
        if isinstance(path, str)
    )
    create_markdown_artifact(
        key="screening-summary",
        markdown=(
            f"### Screened {summary['candidates']:,} candidates in {summary['seconds']:.1f} s\n\n"
            f"- timings: plan {summary['plan_seconds']:.1f} s, score {summary['score_seconds']:.1f} s, rank "
            f"{summary['rank_seconds']:.1f} s; "
            "CPU seconds per step over all chunks: "
            f"{', '.join(f'{k} {v:.1f}' for k, v in summary['chunk_seconds'].items())}\n"
            f"- scored {summary['scored']:,}, rejected {summary['rejected']:,}, removed "
            f"{', '.join(f'{n:,} {why}' for why, n in summary['removed'].items()) or 'none'}; "
            f"chunks {summary['chunks']} ({summary['chunks_skipped']} already on disk)\n"
            f"- **{summary['below_known_hull']:,} predicted below the hull of known compounds**, "
            f"{summary['on_combined_hull']:,} on the combined hull\n"
            + (
                f"- **p_stable expects {summary['expected_stable']:,.1f} stable compounds**"
                f"{weighed_by_p_system(summary)}; {summary['likely_stable']:,} candidates at p_stable >= 0.5\n"
                if summary.get("expected_stable") is not None
                else ""
            )
            + f"- model `{model}` (sha256 `{summary['provenance']['model_sha256'][:12]}`), featurizer "
            f"`{summary['provenance']['featurizer']}`, {summary['provenance']['reference_compounds']:,} known "
            "compounds\n\n"
            f"#### Outputs\n{links}\n"
        ),
    )
    pictures = outputs.get("hull_pictures") or []
    if pictures:
        picture_artifact(
            pictures[0],
            "best-system-hull",
            f"Hull of the most promising system ({Path(pictures[0]).stem[5:]}): known compounds and predicted "
            "candidates",
        )
