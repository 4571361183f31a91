"""Prefect flow ``campaign``: a thin layer over :mod:`screening.campaign`. One run screens what the
current model and reference data have not screened, up to the campaign's budget, publishes the
finished spaces to the catalog, and reports what entered and left the catalog's best candidates.
A killed run loses at most the chunks it was writing; the next run continues. Two overlapping
runs cannot write the same part: a space's work folder holds one run at a time.

    python -m flows campaign -p file=deploy/campaigns/battery-oxides.yaml
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows._common import library_logs, retry_on_io
from screening.campaign import load_campaign, plan_campaign, run_campaign
from screening.catalog import diff

TOP = 20


@task(name="run", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=10, retry_condition_fn=retry_on_io)
def run_task(file: str, scheduler: str | None, workers: int | None) -> dict:
    logger = get_run_logger()
    with library_logs(logger):
        return run_campaign(load_campaign(file), scheduler, workers, log=logger.info)


@flow(name="campaign", log_prints=True)
def campaign(file: str, scheduler: str | None = None, workers: int | None = None) -> dict:
    """Run the campaign in ``file`` (YAML, see :mod:`screening.campaign`) as far as its budget goes."""
    spec = load_campaign(file)  # a bad file fails here, before any work
    record = run_task(file, scheduler, workers)
    status = plan_campaign(spec)
    create_table_artifact(key="campaign-status", table=status, description=f"{spec.name}: done and left per space")
    change = diff(spec.root, TOP)
    lines = [f"### {spec.name}: run {record['run']} ({record['stopped']})", ""]
    lines += [f"- {s['space']}: {s['candidates_scored']:,} candidates scored" for s in record["spaces"]] or [
        "- nothing left"
    ]
    lines += ["", f"Entered the best {TOP} since {change['previous'] or 'the start'}:"]
    lines += [f"- {formula} ({space}, model {model})" for space, model, formula in change["entered"]] or ["- none"]
    lines += ["", "Left it:"] + ([f"- {formula} ({space})" for space, _, formula in change["left"]] or ["- none"])
    create_markdown_artifact(key="campaign-diff", markdown="\n".join(lines), description="catalog diff")
    left = sum(r["left"] for r in status)
    print(f"campaign {spec.name}: run {record['run']} stopped ({record['stopped']}); {left:,} candidates left")
    return record
