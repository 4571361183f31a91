"""Ranking the scored candidates of a screening run, and the tables people read first.

The ranking is global (the combined hull of a chemical system needs all of its candidates), so
it reads only the columns it needs from the scored parts, computes the combined-hull columns per
row, and writes ``ranked.parquet`` sorted by predicted distance to the known hull.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from screening.composition import CompositionBatch, parse_formulas
from screening.hull import hull_distances
from screening.tabular_io import write_parquet_atomic


class Col(StrEnum):
    """Column names of the scored and ranked tables (documented in docs/outputs.md)."""

    rank = "rank"
    candidate_id = "candidate_id"
    formula = "formula"
    chemsys = "chemsys"
    n_elements = "n_elements"
    e_form_pred = "e_form_pred"
    e_form_std = "e_form_std"
    known_hull_energy = "known_hull_energy"
    e_above_known_hull = "e_above_known_hull"
    p_below_known_hull = "p_below_known_hull"
    known_decomposition = "known_decomposition"
    rare_element = "rare_element"
    e_above_combined_hull = "e_above_combined_hull"
    stable_combined = "stable_combined"
    rank_in_system = "rank_in_system"


def rank(out: Path, ref_batch: CompositionBatch, ref_energy: np.ndarray, provenance: dict) -> pd.DataFrame:
    """All scored candidates with their distance to the hull of known and predicted compounds
    together, ranked by distance to the known hull (most negative first), then by the
    probability of lying below it, then by candidate id (a total, reproducible order)."""
    scored = pd.read_parquet(sorted(str(p) for p in (out / "scored").glob("part-*.parquet")))  # complete parts only
    if len(scored) == 0:
        scored = scored.assign(**{Col.e_above_combined_hull: np.zeros(0), Col.stable_combined: np.zeros(0, bool)})
    else:
        cand_batch, rejected = parse_formulas(scored[Col.formula].tolist())
        if rejected:
            raise RuntimeError(f"scored formulas failed to parse: {rejected[:3]}")
        both = CompositionBatch.concat(ref_batch, cand_batch)
        energies = np.concatenate([ref_energy, scored[Col.e_form_pred].to_numpy()])
        combined = hull_distances(both, energies)
        scored[Col.e_above_combined_hull] = combined.e_above_hull[len(ref_batch) :]
        scored[Col.stable_combined] = combined.stable[len(ref_batch) :]
    scored = scored.sort_values([Col.e_above_known_hull, Col.p_below_known_hull, Col.candidate_id],
                                ascending=[True, False, True], kind="stable")  # fmt: skip
    scored.insert(0, Col.rank, np.arange(1, len(scored) + 1))
    scored[Col.rank_in_system] = scored.groupby(Col.chemsys).cumcount() + 1
    table = pa.Table.from_pandas(scored, preserve_index=False).replace_schema_metadata({"screening": json.dumps(provenance)})
    write_parquet_atomic(table, str(out / "ranked.parquet"))
    return scored.reset_index(drop=True)


def top_by_system(ranked: pd.DataFrame, k: int) -> pd.DataFrame:
    """The best ``k`` candidates of every chemical system (systems ordered by their best)."""
    return ranked[ranked[Col.rank_in_system] <= k].sort_values([Col.chemsys, Col.rank_in_system]).reset_index(drop=True)


def markdown_table(top: pd.DataFrame) -> str:
    lines = ["| rank | formula | system | E_form pred (eV/atom) | ± std | E above known hull (eV/atom) | P(below known hull) | decomposition (known) |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in top.itertuples():
        flag = " ⚠ rare element" if r.rare_element else ""
        lines.append(f"| {r.rank} | {r.formula}{flag} | {r.chemsys} | {r.e_form_pred:.3f} | {r.e_form_std:.3f} | "
                     f"{r.e_above_known_hull:+.3f} | {r.p_below_known_hull:.2f} | {r.known_decomposition} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def print_top(ranked: pd.DataFrame, k: int = 10) -> str:
    """A short plain-text table for terminals."""
    cols = [Col.rank, Col.formula, Col.chemsys, Col.e_form_pred, Col.e_form_std, Col.e_above_known_hull, Col.p_below_known_hull]
    if len(ranked) == 0:
        return "(no candidates scored)"
    return ranked.head(k)[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}")
