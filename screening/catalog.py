"""A campaign's catalog: every screened candidate of every finished space, one Parquet dataset
partitioned by model and space (``catalog/model=<key>/space=<name>/part-0.parquet``), and
``catalog.duckdb``, a DuckDB file whose view ``candidates`` reads all of it (open it with
``duckdb.connect("ROOT/catalog.duckdb", read_only=True)``). Each row carries its provenance:
``model_key``, ``reference_key`` (hashes of the weights and of the reference tables), ``run``,
``screened_at``.

Feedback: new DFT results (the campaign's ``feedback`` folder of ``formula,target`` CSVs, one file
per source) are collected into ``feedback.parquet``; the view marks every candidate computed
since with ``computed_e_form``, ``computed_source``, ``computed_e_above_known_hull`` (against the
known hull it was screened against) and ``confirmed`` (at or below it). When a space is screened
again with the new results as known compounds, those candidates leave its candidate list, so the
catalog carries them over from the previous version with their prediction and verdict.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from screening.columns import Col

VIEW = "candidates"
PARTS = "catalog/*/*/*.parquet"
FEEDBACK = "feedback.parquet"
KEY = "composition_key"  # reduced composition, as screening.composition writes it: the join key


def publish(campaign, space, key: str, ranked: Path, run_id: str) -> Path:
    """Copy a finished space's ranked candidates into the catalog (batch by batch, atomically)
    and refresh the view."""
    target = campaign.catalog_part(space, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    source = pq.ParquetFile(ranked)
    writer, written = None, set()
    try:
        for batch in source.iter_batches(batch_size=100_000):
            table = provenance_columns(pa.Table.from_batches([batch]), key, run_id)
            table = table.append_column(KEY, pa.array(composition_keys(table.column(Col.formula).to_pylist())))
            written.update(table.column(KEY).to_pylist())
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        computed = _computed_before(campaign.root, target, written)
        if computed is not None and len(computed):
            writer.write_table(computed.select(writer.schema.names).cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, target)
    target.with_name("_key").write_text(key)  # after the data: a crash in between republishes
    refresh_view(campaign.root)
    return target


def split_key(key: str) -> tuple[str, str]:
    """A work key ``<model>-<reference>[-bf16]`` (:meth:`screening.campaign.Campaign.key`): its model
    and reference hashes (a third part says how it was computed, not what)."""
    model, reference = key.split("-")[:2]
    return model, reference


def provenance_columns(table: pa.Table, key: str, run_id: str) -> pa.Table:
    n = len(table)
    model, reference = split_key(key)
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for name, value in (("model_key", model), ("reference_key", reference), ("run", run_id), ("screened_at", when)):
        table = table.append_column(name, pa.array([value] * n, pa.string()))
    return table


def composition_keys(formulas: list[str]) -> list[str]:
    from screening.composition import parse_formulas

    batch, rejected = parse_formulas(formulas)
    if rejected:
        raise RuntimeError(f"catalog formulas failed to parse: {rejected[:3]}")
    return batch.composition_keys()


def _computed_before(root: Path, target: Path, written: set) -> pa.Table | None:
    """Rows of the previous version of ``target`` whose composition has been computed since
    (in the feedback table) and that the new version no longer lists."""
    feedback = Path(root) / FEEDBACK
    if not target.exists() or not feedback.exists():
        return None
    computed = set(pq.read_table(feedback, columns=[KEY]).column(KEY).to_pylist())
    old = pq.read_table(target)
    if KEY not in old.column_names:
        return None
    keep = [k in computed and k not in written for k in old.column(KEY).to_pylist()]
    return old.filter(pa.array(keep))


def write_feedback(campaign) -> Path | None:
    """Collect the campaign's feedback files into ``feedback.parquet`` (lowest energy per
    composition; rows that cannot be used are refused by name) and refresh the view."""
    from screening.datasets import formula_targets, read_formula_table

    files = campaign.feedback_files()
    if not files:
        return None
    rows = []
    for path in files:
        frame = read_formula_table(path)
        batch, energy, rejected = formula_targets(frame, str(path))
        if rejected:
            raise ValueError(f"{path}: row {rejected[0].index + 2} ({rejected[0].formula}): {rejected[0].reason}")
        sources = (
            frame["source"].iloc[batch.index].astype(str).tolist() if "source" in frame else [path.stem] * len(batch)
        )
        rows += zip(batch.composition_keys(), energy.tolist(), sources, strict=True)
    best: dict[str, tuple[float, str]] = {}
    for key, energy, source in rows:
        if key not in best or energy < best[key][0]:
            best[key] = (energy, source)
    table = pa.table(
        {
            KEY: list(best),
            "computed_e_form": [e for e, _ in best.values()],
            "computed_source": [s for _, s in best.values()],
        }
    )
    target = Path(campaign.root) / FEEDBACK
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, target)
    refresh_view(campaign.root)
    return target


def refresh_view(root: Path) -> None:
    import duckdb

    root = Path(root).resolve()
    if not list(root.glob(PARTS)):
        return
    pattern = str(root / PARTS).replace("'", "''")
    parts = f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)"
    feedback = root / FEEDBACK
    if feedback.exists():
        marks = str(feedback).replace("'", "''")
        select = (
            f"SELECT c.*, f.computed_e_form, f.computed_source, "
            f"f.computed_e_form - c.{Col.known_hull_energy} AS computed_e_above_known_hull, "
            f"f.computed_e_form <= c.{Col.known_hull_energy} AS confirmed "
            f"FROM {parts} c LEFT JOIN read_parquet('{marks}') f USING ({KEY})"
        )
    else:
        select = f"SELECT * FROM {parts}"
    con = duckdb.connect(str(root / "catalog.duckdb"))
    try:
        con.execute(f"CREATE OR REPLACE VIEW {VIEW} AS {select}")
    finally:
        con.close()


def current_model(root: Path) -> str | None:
    """The model key the campaign's last run screened with (``None`` before any run)."""
    runs = sorted((Path(root) / "runs").glob("*.json"))
    key = json.loads(runs[-1].read_text()).get("key") if runs else None
    return split_key(key)[0] if key else None


def top(root: Path, n: int = 20, model: str | None = None):
    """The catalog's best ``n`` candidates (by p_stable, then distance to the known hull): of the
    model the last run screened with (``model=None``; after a promotion, the new one), of one
    ``model`` key, or of every model (``model="all"``)."""
    import duckdb

    root = Path(root)
    model = current_model(root) if model is None else None if model == "all" else model
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
