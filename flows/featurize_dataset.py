"""Prefect flow ``featurize-dataset``: a table of formulas to a Parquet feature dataset.

A thin layer over :func:`screening.featurize_dataset.featurize_file`, which does the chunking,
Dask parallelism and resumable writes; a retry of the task therefore redoes only the chunks
that were not complete.

    python -m flows featurize-dataset -p input_path=../shared/data/mp_e_form/train.csv -p out_dir=runs/mp-magpie145
"""

from __future__ import annotations

from dataclasses import asdict

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from screening.datasets import data_path
from screening.featurize_dataset import featurize_file


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def featurize(
    input_path: str, out_dir: str, featurizer: str, chunk_size: int, scheduler: str | None, workers: int | None
) -> dict:
    return asdict(featurize_file(input_path, out_dir, featurizer, chunk_size, scheduler=scheduler, workers=workers))


@flow(name="featurize-dataset", log_prints=True)
def featurize_dataset(
    input_path: str,
    out_dir: str,
    featurizer: str = "magpie145",
    chunk_size: int = 50_000,
    scheduler: str | None = None,
    workers: int | None = None,
) -> dict:
    """Featurize ``input_path`` (``{data}/...``: under ``$SCREENING_DATA_DIR``) into ``out_dir``."""
    input_path = data_path(input_path)
    summary = featurize(input_path, out_dir, featurizer, chunk_size, scheduler, workers)
    create_markdown_artifact(
        key="featurize-summary",
        markdown=(
            f"### Featurized `{input_path}` with `{summary['featurizer']}`\n\n"
            "| rows in | written | rejected | chunks | already complete | seconds |\n"
            "|---|---|---|---|---|---|\n"
            f"| {summary['rows_in']:,} | {summary['rows_written']:,} | {summary['rows_rejected']:,} "
            f"| {summary['chunks']} | {summary['chunks_skipped']} | {summary['seconds']} |\n\n"
            f"Features: `{out_dir}/features/`; rejected rows with reasons: `{out_dir}/rejected/`"
        ),
    )
    print(f"{summary['rows_written']:,} rows featurized, {summary['rows_rejected']:,} rejected -> {out_dir}")
    return summary
