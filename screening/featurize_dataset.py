"""Featurize a table of formulas in chunks, in parallel, into a Parquet dataset.

Layout of the output directory::

    _manifest.json              what was asked for (input fingerprint, featurizer, chunk size)
    features/part-00000.parquet formula + float32 features, one file per input chunk
    rejected/part-00000.parquet row (position in the input), formula, reason
    _summary.json               totals, written when every chunk is complete

A chunk's rejected file is written before its features file, each atomically, so the features
file marks the chunk complete: a re-run skips complete chunks and redoes any other. Rows in =
rows written + rows rejected is checked at the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from screening import __version__
from screening.featurizers import get_featurizer
from screening.featurizers.base import require_columns
from screening.runs import MANIFEST, check_folder, part_name, progress_bar, start_folder
from screening.tabular_io import (
    Storage,
    count_rows,
    file_fingerprint,
    iter_chunks,
    parquet_num_rows,
    read_columns,
    write_parquet_atomic,
)
from screening.task_map import map_bounded

SUMMARY = "_summary.json"
FEATURES_DIR = "features"
REJECTED_DIR = "rejected"
REJECTED_SCHEMA = pa.schema([("row", pa.int64()), ("formula", pa.string()), ("reason", pa.string())])


@dataclass(frozen=True)
class ChunkResult:
    chunk: int
    rows_in: int
    rows_written: int
    rows_rejected: int
    skipped: bool


@dataclass(frozen=True)
class DatasetSummary:
    out_dir: str
    featurizer: str
    n_features: int
    chunks: int
    chunks_skipped: int
    rows_in: int
    rows_written: int
    rows_rejected: int
    seconds: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def feature_schema(labels: list[str], metadata: dict) -> pa.Schema:
    fields = [pa.field("formula", pa.string())] + [pa.field(label, pa.float32()) for label in labels]
    return pa.schema(fields, metadata={"screening": json.dumps(metadata)})


def featurize_chunk(spec: str, chunk: int, start_row: int, frame, out_dir: str, metadata: dict) -> ChunkResult:
    """Featurize one chunk and write its files; a no-op if the chunk is already complete.
    Runs on Dask workers: the featurizer is built once per worker process (cached by spec)."""
    out = Storage(out_dir)
    features_path = out.path(FEATURES_DIR, part_name(chunk))
    rejected_path = out.path(REJECTED_DIR, part_name(chunk))
    if out.exists(FEATURES_DIR, part_name(chunk)):
        written = parquet_num_rows(features_path)
        rejected = parquet_num_rows(rejected_path)
        return ChunkResult(chunk, written + rejected, written, rejected, skipped=True)

    featurizer = get_featurizer(spec)
    table = featurizer.featurize_frame_float32(frame.reset_index(drop=True))
    rows = np.array([r.index for r in table.rejections], np.int64) + start_row
    rejected = pa.table(
        [rows, [r.formula for r in table.rejections], [r.reason for r in table.rejections]],
        schema=REJECTED_SCHEMA,
    )
    write_parquet_atomic(rejected, rejected_path)

    labels = table.labels
    columns = np.ascontiguousarray(table.values.T)  # float32, one contiguous row per label
    arrays = [pa.array(table.formula.tolist(), pa.string())] + [pa.array(col) for col in columns]
    features = pa.Table.from_arrays(arrays, schema=feature_schema(labels, metadata))
    write_parquet_atomic(features, features_path, compression="snappy", use_dictionary=["formula"])
    return ChunkResult(chunk, len(frame), len(table.index), len(table.rejections), skipped=False)


def _prepare_out_dir(out: Storage, manifest: dict, overwrite: bool) -> None:
    if overwrite and out.exists(MANIFEST):
        for name in (FEATURES_DIR, REJECTED_DIR, MANIFEST, SUMMARY):
            out.remove(name)
    check_folder(out, manifest, "screening dataset", "pass --overwrite to replace it or choose another --out")
    start_folder(out, manifest, (FEATURES_DIR, REJECTED_DIR))


def featurize_file(
    input_path: str, out_dir: str, featurizer: str = "magpie145", chunk_size: int = 50_000, **run
) -> DatasetSummary:
    """Featurize every row of ``input_path`` (CSV or Parquet with a ``formula`` column) into a
    Parquet dataset under ``out_dir``: :func:`featurize_chunks` over the file's chunks (``run``:
    its ``scheduler``, ``workers``, ``overwrite``, ``progress``). Resumable: complete chunks of an
    earlier run with the same input and parameters are kept. See the module docstring for the
    layout."""
    feat = get_featurizer(featurizer)
    fingerprint = file_fingerprint(input_path)
    require_columns(read_columns(input_path), feat.required_columns())
    chunks = iter_chunks(input_path, chunk_size, feat.required_columns())
    return featurize_chunks(
        chunks, out_dir, featurizer, fingerprint, chunk_size, expected_rows=count_rows(input_path), **run
    )


def featurize_chunks(
    chunks: Iterable[pd.DataFrame],
    out_dir: str,
    featurizer: str = "magpie145",
    source: dict | str = "stream",
    chunk_size: int | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    expected_rows: int | None = None,
) -> DatasetSummary:
    """Featurize a stream of tables (each with the featurizer's required columns) into a
    Parquet dataset, one part per table. ``source`` identifies the stream in the manifest: a
    re-run with the same source, featurizer and chunk size resumes, so the stream must yield
    the same chunks in the same order (as enumeration and file reading do)."""
    started = time.perf_counter()
    feat = get_featurizer(featurizer)
    manifest = {
        "input": source,
        "featurizer": feat.spec(),
        "feature_labels": feat.feature_labels(),
        "chunk_size": chunk_size,
    }
    out = Storage(out_dir)
    _prepare_out_dir(out, manifest, overwrite)
    metadata = {"featurizer": feat.spec(), "input": source, "code_version": __version__}

    results: list[ChunkResult] = []
    bar = progress_bar(progress, expected_rows, "rows", f"featurize {feat.spec()}")

    def record(result: ChunkResult) -> None:
        results.append(result)
        if bar is not None:
            bar.update(result.rows_in)

    def tasks():  # complete chunks are accounted for here and never shipped to a worker
        start = 0
        for chunk, frame in enumerate(chunks):
            if out.exists(FEATURES_DIR, part_name(chunk)):
                record(featurize_chunk(feat.spec(), chunk, start, frame, out.url, metadata))
            else:
                yield (feat.spec(), chunk, start, frame, out.url, metadata)
            start += len(frame)

    for result in map_bounded(featurize_chunk, tasks(), scheduler=scheduler, workers=workers):
        record(result)
    if bar is not None:
        bar.close()

    results.sort(key=lambda r: r.chunk)
    summary = DatasetSummary(
        out_dir=out.url,
        featurizer=feat.spec(),
        n_features=len(feat.feature_labels()),
        chunks=len(results),
        chunks_skipped=sum(r.skipped for r in results),
        rows_in=sum(r.rows_in for r in results),
        rows_written=sum(r.rows_written for r in results),
        rows_rejected=sum(r.rows_rejected for r in results),
        seconds=round(time.perf_counter() - started, 3),
    )
    if summary.rows_in != summary.rows_written + summary.rows_rejected:
        raise RuntimeError(f"row accounting failed in {out}: {summary}")
    if expected_rows is not None and expected_rows != summary.rows_in:
        raise RuntimeError(f"read {summary.rows_in} rows of {source}, which has {expected_rows}")
    out.write_text(summary.to_json(), SUMMARY)
    return summary
