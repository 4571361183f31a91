"""Ranking the scored candidates of a screening run, and the tables people read first.

The ranking is global, but its memory is not: it never holds all scored candidates.

1. The combined hull (known compounds and predicted candidates together) has as vertices only
   known compounds and candidates at or below the *known* hull (a candidate above the known hull
   is above the lower combined hull too). Those few (~6% of a run) are read and their hull built.
2. Each scored part is then placed against that hull on its own (:mod:`screening.combined_hull`):
   the combined-hull columns of one part at a time, written to a scratch folder.
   Each part also numbers ``rank_in_system`` for the systems it holds whole (most: a system
   is split only where a chunk ends); the rows of split systems are set aside, a few thousand.
3. DuckDB joins and sorts the parts out of core (bounded memory, spilling to disk) into
   ``ranked.parquet``, numbering ``rank`` (and ``rank_in_system`` of the split systems: a
   second window over all rows took a third of the sort's time); the small tables people read
   first (top-k, best per system, the best systems' candidates) are queries on that file.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from screening.cluster import in_background
from screening.columns import Col
from screening.combined_hull import combine_part, combined_hull, signed_keys, sort_keys
from screening.composition import CompositionBatch
from screening.stability import per_system as aggregated_per_system
from screening.stability import system_stats, system_table
from screening.tabular_io import write_parquet_atomic
from screening.task_map import map_bounded

RANK_SCRATCH = ".rank-scratch"  # hidden: Parquet readers of the run folder skip it
SPLIT_SYSTEMS = "split-systems.parquet"  # in the scratch folder: sort keys of the systems parts hold in part
# Parts placed on the combined hull at once in this process (without a scheduler): their qhull,
# numpy and Parquet work releases the interpreter lock most of the time. 1.1M candidates on 2
# cores: the ranking 11.5 -> 9.1 s with 2 threads, 10.2-11.1 s with 3.
RANK_THREADS = min(os.cpu_count() or 1, 2)


@dataclass
class Ranking:
    """What a run's summary and first tables need, read back from ``ranked.parquet``."""

    path: Path
    total: int
    below_known_hull: int
    on_combined_hull: int
    top: pd.DataFrame  # the first ``top_k`` rows
    by_system: pd.DataFrame  # the best ``per_system`` of every chemical system, systems ordered by their best
    best_systems: dict[str, pd.DataFrame] = field(default_factory=dict)  # every candidate of the best systems
    expected_stable: float | None = None  # sum of p_stable: how many stable compounds the screen should hold
    likely_stable: int | None = None  # candidates given p_stable >= 0.5
    # what ``while_sorting`` made of each of the best systems it was given (the same candidates, in the same order)
    made_while_sorting: dict[str, object] = field(default_factory=dict)


def rank(
    out: Path,
    ref_batch: CompositionBatch,
    ref_energy: np.ndarray,
    provenance: dict,
    top_k: int = 50,
    per_system: int = 5,
    systems: int = 3,
    memory_limit: str = "1GB",
    stability=None,
    scheduler: str | None = None,
    while_sorting: Callable[[str, pd.DataFrame], object] | None = None,
) -> Ranking:
    """All scored candidates with their distance to the hull of known and predicted compounds
    together, ranked by ``p_stable`` (with a stability model, :mod:`screening.stability`), then by
    distance to the known hull (most negative first), then by the probability of lying below it,
    then by candidate id (a total, reproducible order). With a Dask ``scheduler`` (one the user
    gave), the parts are placed on the combined hull on its workers, else in this process
    (:data:`RANK_THREADS` parts at a time). ``while_sorting(chemsys, candidates)`` (a hull
    picture) is called on a thread, while the database sorts, for each of the ``systems`` best
    systems as the placed parts tell them, with their scored candidates in ranking order; its
    results for those that the sorted file confirms are in ``made_while_sorting``."""
    parts = sorted((out / "scored").glob("part-*.parquet"))  # complete parts only
    if not parts:
        raise FileNotFoundError(f"no scored parts in {out / 'scored'}: nothing to rank")
    scratch = out / RANK_SCRATCH
    shutil.rmtree(scratch, ignore_errors=True)  # a crashed ranking's leftovers
    (scratch / "combined").mkdir(parents=True)
    hull = combined_hull(parts, ref_batch, ref_energy, RANK_THREADS)
    stats = system_stats(parts) if stability is not None else None  # over all parts: systems may span them
    sizes = aggregated_per_system(parts, "count(*) AS candidates")["candidates"]  # systems may span parts
    jobs = ((part, scratch / "combined" / part.name) for part in parts)
    in_process = 0 if scheduler is None else None
    shared = (hull, stats, stability, sizes)
    placed = list(map_bounded(combine_part, jobs, scheduler, in_process, shared=shared, threads=RANK_THREADS))
    split = pa.concat_tables([p[0] for p in placed])
    write_parquet_atomic(split, str(scratch / SPLIT_SYSTEMS))
    early = None
    if while_sorting is not None and systems > 0:
        heads = pa.concat_tables([split, *(p[1] for p in placed)])
        early = in_background(_made_early, parts, scratch, heads, systems, while_sorting, name="while-sorting")
    _sort_into(out / "ranked.parquet", parts, scratch, provenance, memory_limit, by_p_stable=stability is not None)
    ranking = read_ranking(out / "ranked.parquet", top_k, per_system, systems)
    if early is not None:
        made = early.result()
        ranking.made_while_sorting = {
            c: result
            for c, (ids, result) in made.items()
            if c in ranking.best_systems and ranking.best_systems[c][Col.candidate_id].tolist() == ids
        }
    shutil.rmtree(scratch, ignore_errors=True)
    return ranking


def _made_early(parts: list[Path], scratch: Path, heads: pa.Table, systems: int, make) -> dict[str, tuple]:
    """``make(chemsys, candidates)`` for the ``systems`` best systems by their best rows
    (``heads``: each whole system's first row and every row of the split ones), with their
    scored candidates in ranking order; ``{chemsys: (candidate ids, result)}``. Any key that is
    not a finite number leaves the order to the database: nothing is made."""
    by_p_stable = Col.p_stable in heads.column_names
    signed = signed_keys(heads, by_p_stable)
    if signed is None:
        return {}
    chemsys = heads.column(Col.chemsys).to_numpy(zero_copy_only=False)[np.lexsort(signed[::-1])]
    best = list(dict.fromkeys(chemsys.tolist()))[:systems]
    scored = ds.dataset([str(p) for p in parts], format="parquet").to_table(filter=pc.field(Col.chemsys).isin(best))
    if by_p_stable:
        placed = ds.dataset(str(scratch / "combined"), format="parquet").to_table(
            columns=[Col.candidate_id, Col.p_stable],
            filter=pc.field(Col.candidate_id).isin(scored.column(Col.candidate_id)),
        )
        scored = scored.join(placed, Col.candidate_id)
    signed = signed_keys(scored, by_p_stable)
    if signed is None:
        return {}
    frame = scored.to_pandas().iloc[np.lexsort(signed[::-1])]
    made = {}
    for c in best:
        candidates = frame[frame[Col.chemsys] == c].drop(columns=[Col.p_stable], errors="ignore").reset_index(drop=True)
        made[c] = (candidates[Col.candidate_id].tolist(), make(c, candidates))
    return made


def _sort_into(
    path: Path, parts: list[Path], scratch: Path, provenance: dict, memory_limit: str, by_p_stable: bool = False
) -> None:
    import duckdb

    order = ", ".join(f"{name}{' DESC' if descending else ''}" for name, descending in sort_keys(by_p_stable))
    scored = ", ".join(f's."{c}"' for c in pq.read_schema(parts[0]).names)
    tmp = path.with_name(f".{path.name}.tmp")
    metadata = json.dumps(provenance).replace("'", "''")
    con = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": str(scratch / "spill")})
    target = str(tmp).replace("'", "''")  # COPY's target cannot be a parameter
    p_stable_column = f" c.{Col.p_stable}," if by_p_stable else ""
    try:
        con.execute(
            f"""
            COPY (
              SELECT row_number() OVER (ORDER BY {order}) AS {Col.rank}, {scored},
                     c.{Col.e_above_combined_hull}, c.{Col.stable_combined},{p_stable_column}
                     coalesce(c.{Col.rank_in_system}, x.{Col.rank_in_system}) AS {Col.rank_in_system}
              FROM read_parquet(?, union_by_name = true) s
              JOIN read_parquet(?) c USING ({Col.candidate_id})
              LEFT JOIN (
                SELECT {Col.candidate_id}, row_number() OVER (PARTITION BY {Col.chemsys} ORDER BY {order})
                       AS {Col.rank_in_system}
                FROM read_parquet(?)
              ) x USING ({Col.candidate_id})
              ORDER BY {Col.rank}
            ) TO '{target}' (FORMAT parquet, KV_METADATA {{screening: '{metadata}'}})""",
            [[str(p) for p in parts], str(scratch / "combined" / "part-*.parquet"), str(scratch / SPLIT_SYSTEMS)],
        )
    finally:
        con.close()
    os.replace(tmp, path)


def system_probabilities(path: Path, stability) -> pd.DataFrame:
    """Per chemical system of a ranking: its :data:`screening.stability.SYSTEM_FEATURES` and
    ``p_system``, the probability that it hides a stable compound (the stability model's system-level
    classifier), most promising first. ``p_stable`` ranks candidates as if each system hid one;
    ``p_system`` says how likely that is."""
    table = system_table(path).reset_index()
    table["p_system"] = stability.system_probability(table)
    return table.sort_values(["p_system", Col.chemsys], ascending=[False, True], ignore_index=True)


def read_ranking(path: Path, top_k: int = 50, per_system: int = 5, systems: int = 3) -> Ranking:
    """The counts and first tables of a ranking on disk."""
    import duckdb

    con = duckdb.connect()
    source = "read_parquet('{}')".format(str(path).replace("'", "''"))
    try:
        total, below, on_combined = con.execute(
            f"SELECT count(*), count(*) FILTER ({Col.e_above_known_hull} < 0), "
            f"count(*) FILTER ({Col.stable_combined}) FROM {source}"
        ).fetchone()
        top = con.execute(f"SELECT * FROM {source} WHERE {Col.rank} <= ? ORDER BY {Col.rank}", [top_k]).df()
        by_system = con.execute(
            f"""
            SELECT r.* FROM {source} r
            JOIN (SELECT {Col.chemsys}, min({Col.rank}) AS best FROM {source} GROUP BY {Col.chemsys}) b
              USING ({Col.chemsys})
            WHERE r.{Col.rank_in_system} <= ? ORDER BY b.best, r.{Col.rank_in_system}""",
            [per_system],
        ).df()
        expected = likely = None
        if Col.p_stable in con.execute(f"SELECT * FROM {source} LIMIT 0").df().columns:
            expected, likely = con.execute(
                f"SELECT sum({Col.p_stable}), count(*) FILTER ({Col.p_stable} >= 0.5) FROM {source}"
            ).fetchone()
        best_systems = {
            c: con.execute(f"SELECT * FROM {source} WHERE {Col.chemsys} = ? ORDER BY {Col.rank}", [c]).df()
            for c in by_system[Col.chemsys].drop_duplicates().head(systems)
        }
    finally:
        con.close()
    return Ranking(
        path,
        int(total),
        int(below),
        int(on_combined),
        top,
        by_system,
        best_systems,
        None if expected is None else float(expected),
        None if likely is None else int(likely),
    )


def markdown_table(top: pd.DataFrame) -> str:
    ranked_by_p = Col.p_stable in top.columns
    lines = [
        "| rank | formula | system |"
        + (" P(stable) |" if ranked_by_p else "")
        + " E_form pred (eV/atom) | ± std | E above known hull (eV/atom) | P(below known hull) | decomposition "
        "(known) |",
        "|---|---|---|" + ("---|" if ranked_by_p else "") + "---|---|---|---|---|",
    ]
    for r in top.itertuples():
        flag = " ⚠ rare element" if r.rare_element else ""
        p = f" {r.p_stable:.3f} |" if ranked_by_p else ""
        lines.append(
            f"| {r.rank} | {r.formula}{flag} | {r.chemsys} |{p} {r.e_form_pred:.3f} | {r.e_form_std:.3f} | "
            f"{r.e_above_known_hull:+.3f} | {r.p_below_known_hull:.2f} | {r.known_decomposition} |"
        )
    return "\n".join(lines) + "\n"


def print_top(ranked: pd.DataFrame, k: int = 10) -> str:
    """A short plain-text table for terminals."""
    cols = [
        Col.rank,
        Col.formula,
        Col.chemsys,
        *([Col.p_stable] if Col.p_stable in ranked.columns else []),
        Col.e_form_pred,
        Col.e_form_std,
        Col.e_above_known_hull,
        Col.p_below_known_hull,
    ]
    if len(ranked) == 0:
        return "(no candidates scored)"
    return ranked.head(k)[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}")
