"""Scored parts placed on the combined hull (the hull of the known compounds and the candidates
at or below the known hull), one part at a time: each part's distances to it, ``p_stable``, and
``rank_in_system`` of the systems the part holds whole. :mod:`screening.ranking` sorts the result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from screening.columns import Col
from screening.composition import CompositionBatch, parse_formulas
from screening.hull import STABLE_TOL, ReferenceHull
from screening.stability import on_hull_as_zero, stacker_inputs
from screening.tabular_io import write_parquet_atomic

# eV/atom: candidates this close above the known hull join the combined hull's points too (extra points never change a
# hull)
HULL_SET_TOL = 1e-6


def combine_part(part: Path, target: Path, shared: tuple) -> tuple[pa.Table, pa.Table]:
    """Write one scored part's combined-hull columns (and ``p_stable``, and ``rank_in_system``
    of the systems it holds whole: ``sizes``, candidates per system) to ``target``; returns the
    sort keys of the rows of the systems it holds in part, and of the first row of each system
    it holds whole. The part is read once."""
    hull, stats, stability, sizes = shared
    columns = [Col.candidate_id, Col.formula, Col.chemsys, Col.e_form_pred, Col.e_above_known_hull]
    columns += [Col.p_below_known_hull, *(_STACKER_COLUMNS if stability is not None else [])]
    if stability is not None and Col.evidence_logit not in pq.read_schema(part).names:
        raise RuntimeError(
            f"{part} was scored without the evidence columns the stability model needs; rescore into a new folder"
        )
    scored = pq.read_table(part, columns=list(dict.fromkeys(columns)))
    table = combined_columns(scored, hull, part)
    keys = scored.select([Col.candidate_id, Col.chemsys, Col.e_above_known_hull, Col.p_below_known_hull])
    if stability is not None:
        p_stable = pa.array(_p_stable(scored, table, stats, stability))
        table = table.append_column(Col.p_stable, p_stable)
        keys = keys.append_column(Col.p_stable, p_stable)
    within, whole = ranks_within_systems(keys, sizes)
    write_parquet_atomic(table.append_column(Col.rank_in_system, pa.array(within, mask=~whole)), str(target))
    return keys.filter(pa.array(~whole)), keys.filter(pa.array(whole & (within == 1)))


def ranks_within_systems(keys: pa.Table, sizes: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``keys`` (``chemsys`` and the columns of :func:`sort_keys`): its position in
    its system in the ranking's order, and whether all of the system's candidates
    (``sizes[chemsys]``) are here, so that the position is its ``rank_in_system``. Rows with a
    key that is not a finite number count as not whole (NaN's place is the database's to say)."""
    n = keys.num_rows
    encoded = pc.dictionary_encode(keys.column(Col.chemsys)).combine_chunks()
    system = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    here = np.bincount(system, minlength=len(encoded.dictionary))
    whole = (here == sizes.reindex(encoded.dictionary.to_pylist()).to_numpy())[system]
    signed = signed_keys(keys, Col.p_stable in keys.column_names)
    if signed is None:
        return np.zeros(n, np.int64), np.zeros(n, bool)
    order = np.lexsort([*reversed(signed), system])  # the last key is the first sorted by
    first = np.r_[True, system[order][1:] != system[order][:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    within = np.empty(n, np.int64)
    within[order] = np.arange(n) - start + 1
    return within, whole


def signed_keys(table: pa.Table, by_p_stable: bool) -> list[np.ndarray] | None:
    """The columns of :func:`sort_keys` of ``table``, descending ones negated, so that an
    ascending lexicographic sort gives the ranking's order; ``None`` if one holds a number that is
    not finite (then the order is the database's to give)."""
    signed = []
    for name, descending in sort_keys(by_p_stable):
        column = table.column(name).to_numpy()
        if column.dtype.kind == "f" and not np.isfinite(column).all():
            return None
        signed.append(-column if descending else column)
    return signed


def sort_keys(by_p_stable: bool) -> list[tuple[str, bool]]:
    """The ranking's order: ``(column, descending)``, the first sorted by first."""
    keys = [(Col.e_above_known_hull, False), (Col.p_below_known_hull, True), (Col.candidate_id, False)]
    return [(Col.p_stable, True), *keys] if by_p_stable else keys


def combined_hull(
    parts: list[Path], ref_batch: CompositionBatch, ref_energy: np.ndarray, threads: int = 1
) -> ReferenceHull:
    """The hull of the known compounds and the candidates at or below the known hull (its qhull
    calls on ``threads`` threads)."""
    below = ds.dataset([str(p) for p in parts], format="parquet").to_table(
        columns=[Col.formula, Col.e_form_pred], filter=pc.field(Col.e_above_known_hull) <= HULL_SET_TOL
    )
    batch, rejected = parse_formulas(below.column(Col.formula).to_pylist())
    if rejected:
        raise RuntimeError(f"scored formulas failed to parse: {rejected[:3]}")
    energy = below.column(Col.e_form_pred).to_numpy().astype(np.float64)
    batch = CompositionBatch.concat(ref_batch, batch)
    return ReferenceHull(batch, np.concatenate([ref_energy, energy]), decompositions=False, threads=threads)


def combined_columns(scored: pa.Table, hull: ReferenceHull, part: Path) -> pa.Table:
    """``candidate_id, e_above_combined_hull, stable_combined`` of one scored part's rows."""
    batch, rejected = parse_formulas(scored.column(Col.formula).to_pylist())
    if rejected:
        raise RuntimeError(f"scored formulas of {part} failed to parse: {rejected[:3]}")
    hull_e = hull.energies_at(batch)
    # on the hull: exactly 0 (a vertex is at 0 +- 1e-15 by rounding), as the stability model sees it
    e_above = on_hull_as_zero(scored.column(Col.e_form_pred).to_numpy().astype(np.float64) - hull_e)
    return pa.table(
        {
            Col.candidate_id: scored.column(Col.candidate_id),
            Col.e_above_combined_hull: e_above,
            Col.stable_combined: e_above <= STABLE_TOL,
        }
    )


# what the stacker reads of a scored part besides the combined-hull distance (stacker_inputs)
_STACKER_COLUMNS = [
    Col.chemsys,
    Col.n_elements,
    Col.e_form_pred,
    Col.e_form_std,
    Col.known_hull_energy,
    Col.e_above_known_hull,
    Col.evidence_logit,
    Col.log_system_known,
    Col.log_sub_hull_compounds,
]


def _p_stable(scored: pa.Table, combined: pa.Table, stats: pd.DataFrame, stability) -> np.ndarray:
    frame = scored.select(_STACKER_COLUMNS).to_pandas()
    frame[Col.e_above_combined_hull] = combined.column(Col.e_above_combined_hull).to_numpy()
    return stability.probability(stacker_inputs(frame, stats))
