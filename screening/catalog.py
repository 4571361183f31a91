"""A campaign's catalog: every screened candidate of every finished space, one Parquet dataset
partitioned by model and space (``catalog/model=<key>/space=<name>/part-0.parquet``), and
``catalog.duckdb``, a DuckDB file whose view ``candidates`` reads all of it (open it with
``duckdb.connect("ROOT/catalog.duckdb", read_only=True)``). Each row carries its provenance:
``model_key``, ``reference_key`` (hashes of the weights and of the reference tables), ``run``,
``screened_at``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from screening.columns import Col

VIEW = "candidates"
PARTS = "catalog/*/*/*.parquet"


def publish(campaign, space, key: str, ranked: Path, run_id: str) -> Path:
    """Copy a finished space's ranked candidates into the catalog (batch by batch, atomically)
    and refresh the view."""
    from screening.campaign import provenance_columns

    target = campaign.catalog_part(space, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    source = pq.ParquetFile(ranked)
    writer = None
    try:
        for batch in source.iter_batches(batch_size=100_000):
            table = provenance_columns(pa.Table.from_batches([batch]), key, run_id)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, target)
    target.with_name("_key").write_text(key)  # after the data: a crash in between republishes
    refresh_view(campaign.root)
    return target


def refresh_view(root: Path) -> None:
    import duckdb

    root = Path(root).resolve()
    if not list(root.glob(PARTS)):
        return
    pattern = str(root / PARTS).replace("'", "''")
    con = duckdb.connect(str(root / "catalog.duckdb"))
    try:
        con.execute(
            f"CREATE OR REPLACE VIEW {VIEW} AS SELECT * FROM "
            f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)"
        )
    finally:
        con.close()


def top(root: Path, n: int = 20, model: str | None = None):
    """The catalog's best ``n`` candidates (by p_stable, then distance to the known hull), of one
    ``model`` key or of all."""
    import duckdb

    root = Path(root)
    if not (root / "catalog.duckdb").exists():
        raise FileNotFoundError(f"{root} has no catalog yet: run the campaign first")
    con = duckdb.connect(str(root / "catalog.duckdb"), read_only=True)
    try:
        columns = {row[0] for row in con.execute(f"DESCRIBE {VIEW}").fetchall()}
        # by p_stable when the model had a stability model; by predicted distance to the known hull
        by = f"{Col.p_stable} DESC NULLS LAST, " if Col.p_stable in columns else ""
        shown = [
            c
            for c in (
                "space",
                "model",
                Col.formula,
                Col.chemsys,
                Col.p_stable,
                Col.e_form_pred,
                Col.e_above_known_hull,
                "run",
            )
            if c in columns
        ]
        where = "WHERE model = ?" if model else ""
        return con.execute(
            f"SELECT {', '.join(shown)} FROM {VIEW} {where} "
            f"ORDER BY {by}{Col.e_above_known_hull}, space, {Col.formula} LIMIT ?",
            [model, n] if model else [n],
        ).df()
    finally:
        con.close()


def snapshot(root: Path, n: int) -> list[dict]:
    """The best ``n`` now, as records (what a run remembers for :func:`diff`)."""
    if not (Path(root) / "catalog.duckdb").exists():
        return []
    return top(root, n).to_dict("records")


def diff(root: Path, n: int = 20) -> dict:
    """What entered and what left the catalog's best ``n`` between the last two runs."""
    runs = sorted((Path(root) / "runs").glob("*.json"))
    if not runs:
        raise FileNotFoundError(f"{root} has no runs yet")
    key = lambda r: (r["space"], r["model"], r[Col.formula])  # noqa: E731
    now = [key(r) for r in json.loads(runs[-1].read_text())["top"][:n]]
    before = [key(r) for r in json.loads(runs[-2].read_text())["top"][:n]] if len(runs) > 1 else []
    return {
        "run": runs[-1].stem,
        "previous": runs[-2].stem if len(runs) > 1 else None,
        "entered": [k for k in now if k not in before],
        "left": [k for k in before if k not in now],
    }
