"""The screening pipeline: enumerate a chemical space, score every candidate with an ensemble,
place it against the convex hull of known compounds, and rank by predicted stability.

Output directory::

    _manifest.json             the request (so a re-run resumes only the same request)
    scored/part-00000.parquet  every candidate of a chunk, scored (written atomically; a re-run
                               skips complete chunks)
    rejected/part-00000.parquet candidates the model cannot featurize, with the reason
    ranked.parquet             all scored candidates with the combined-hull columns, ranked
    top.csv, top.md            the top candidates
    summary.json               counts, timings, model, provenance
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.special import ndtr

from screening import __version__
from screening.composition import CompositionBatch, parse_formulas
from screening.datasets import read_formula_table
from screening.enumerate import CandidateChunk, Grid, space
from screening.featurizers import get_featurizer
from screening.hull import ReferenceHull, hull_distances
from screening.models.ensemble import Ensemble
from screening.models.fit import load_model
from screening.oxidation import charge_neutral
from screening.tabular_io import write_parquet_atomic

log = logging.getLogger(__name__)
RARE_ELEMENT_ROWS = 50  # training compositions containing an element below which it is "rare"


@dataclass
class ScreenRequest:
    model: str
    out: str
    elements: list[str] | None = None
    systems: list[list[str]] | None = None
    max_arity: int = 3
    max_atoms: int | None = 10
    max_amount: int | None = None
    charge_neutral: bool = False
    exclude_known: bool = True
    reference: list[str] = field(default_factory=list)
    chunk_size: int = 100_000
    top_k: int = 50
    device: str = "auto"
    bf16: bool = False


def load_reference(paths: list[str], out: Path) -> tuple[CompositionBatch, np.ndarray]:
    """Known compounds: ``formula,target`` tables, lowest energy per composition. Bad rows are
    written to ``reference_rejected.csv`` and counted, never silently dropped."""
    frames = [read_formula_table(p).assign(source=p) for p in paths]
    if not frames:
        batch, _ = parse_formulas([])
        return batch, np.zeros(0)
    frame = pd.concat(frames, ignore_index=True)
    if "target" not in frame.columns:
        raise KeyError("reference tables need a 'target' column (formation energy per atom, eV/atom)")
    batch, rejected = parse_formulas(frame["formula"].tolist())
    energy = pd.to_numeric(frame["target"], errors="coerce").to_numpy(np.float64)[batch.index]
    bad = ~np.isfinite(energy)
    reasons = [(r.index, r.formula, r.reason) for r in rejected]
    reasons += [(int(i), str(f), f"energy {frame['target'].iloc[i]!r} is not a finite number") for i, f in zip(batch.index[bad], batch.formula[bad])]
    if reasons:
        path = out / "reference_rejected.csv"
        pd.DataFrame(reasons, columns=["row", "formula", "reason"]).assign(source=lambda d: frame["source"].iloc[d["row"]].to_numpy()).to_csv(path, index=False)
        log.warning("%d reference rows rejected; see %s", len(reasons), path)
    batch, energy = batch.select(~bad), energy[~bad]
    keys = pd.Series(batch.composition_keys())
    lowest = pd.DataFrame({"key": keys, "e": energy}).sort_values("e", kind="stable").drop_duplicates("key").index.sort_values()
    return batch.select(lowest.to_numpy()), energy[lowest.to_numpy()]


def restrict(batch: CompositionBatch, energy: np.ndarray, elements: set[int]) -> tuple[CompositionBatch, np.ndarray]:
    """Only the reference compounds made of the screened elements matter to their hulls."""
    inside = np.isin(batch.z, [0, *elements]).all(axis=1)
    return batch.select(inside), energy[inside]


def score_chunk(chunk: CandidateChunk, model: Ensemble, hull: ReferenceHull, known: set[str], request: ScreenRequest, rare: set[int]):
    """Filter, featurize and score one chunk; returns the scored table, the rejected rows and
    how many candidates each filter removed."""
    keep = np.ones(len(chunk), bool)
    removed = {}
    if request.charge_neutral:
        neutral = charge_neutral(chunk.batch)
        removed["not charge neutral"] = int((keep & ~neutral).sum())
        keep &= neutral
    if request.exclude_known and known:
        is_known = np.array([k in known for k in chunk.batch.composition_keys()])
        removed["already known"] = int((keep & is_known).sum())
        keep &= ~is_known
    rows = np.flatnonzero(keep)
    frame = pd.DataFrame({"formula": chunk.batch.formula[rows]})
    table = get_featurizer(model.featurizer).featurize_frame(frame)
    rejected = pd.DataFrame({
        "candidate_id": chunk.candidate_id[rows[[r.index for r in table.rejections]]],
        "formula": [r.formula for r in table.rejections],
        "reason": [r.reason for r in table.rejections],
    })  # fmt: skip
    scored_rows = rows[table.index]
    batch = chunk.batch.select(scored_rows)
    mean, std, _ = model.predict(table.values.astype(np.float32), bf16=request.bf16)
    hull_e, decomposition = hull.energy_at(batch)
    e_above = mean - hull_e
    with np.errstate(divide="ignore", invalid="ignore"):
        p_below = np.where(std > 0, ndtr(-e_above / np.where(std > 0, std, 1)), (e_above < 0).astype(float))
    rare_mask = np.isin(batch.z, list(rare)).any(axis=1) if rare else np.zeros(len(batch), bool)
    scored = pd.DataFrame({
        "candidate_id": chunk.candidate_id[scored_rows],
        "formula": batch.formula,
        "chemsys": chunk.chemsys[scored_rows],
        "n_elements": batch.n_elements.astype(np.int8),
        "e_form_pred": mean.astype(np.float64),
        "e_form_std": std.astype(np.float64),
        "known_hull_energy": hull_e,
        "e_above_known_hull": e_above,
        "p_below_known_hull": p_below,
        "known_decomposition": _decomposition_strings(decomposition, hull.batch.formula),
        "rare_element": rare_mask,
    })  # fmt: skip
    return scored, rejected, removed


def _decomposition_strings(decomposition, formulas) -> list[str]:
    from screening.elements import SYMBOLS

    return [
        " + ".join(f"{SYMBOLS[-r - 1] if r < 0 else formulas[r]}:{w:.4g}" for r, w in sorted(zip(ids.tolist(), weights.tolist()), key=lambda t: -t[1]))
        for ids, weights in decomposition
    ]


def screen(request: ScreenRequest, progress: bool = True) -> dict:
    started = time.perf_counter()
    out = Path(request.out)
    candidates = space(request.elements, request.max_arity, Grid(request.max_atoms, request.max_amount), request.systems)
    total = candidates.size()
    _prepare(out, request)
    model = load_model(request.model, request.device)
    model_hash = hashlib.sha256((Path(request.model) / "model.safetensors").read_bytes()).hexdigest()
    ref_batch, ref_energy = load_reference(request.reference, out)
    screened = {z for s in candidates.systems for z in s}
    ref_batch, ref_energy = restrict(ref_batch, ref_energy, screened)
    hull = ReferenceHull(ref_batch, ref_energy)
    known = set(ref_batch.composition_keys())
    rare = _rare_elements(model)
    provenance = {
        "model": str(request.model), "model_sha256": model_hash, "model_card": {k: model.card.get(k) for k in ("architecture", "members", "featurizer", "created")},
        "featurizer": model.featurizer, "code_version": __version__, "request": asdict(request),
        "reference_compounds": len(ref_batch), "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    log.info("screening %s candidates in %d chemical systems against %d known compounds", f"{total:,}", len(candidates.systems), len(ref_batch))

    counts = {"candidates": total, "scored": 0, "rejected": 0, "chunks": 0, "chunks_skipped": 0, "removed": {}}
    bar = _bar(progress, total)
    for i, chunk in enumerate(candidates.chunks(request.chunk_size)):
        part = out / "scored" / f"part-{i:05d}.parquet"
        if part.exists():
            meta = json.loads(pq.read_schema(part).metadata[b"screening_chunk"])
            counts["chunks_skipped"] += 1
        else:
            scored, rejected, removed = score_chunk(chunk, model, hull, known, request, rare)
            meta = {"candidates": len(chunk), "scored": len(scored), "rejected": len(rejected), "removed": removed}
            write_parquet_atomic(pa.Table.from_pandas(rejected, preserve_index=False), str(out / "rejected" / part.name))
            table = pa.Table.from_pandas(scored, preserve_index=False)
            table = table.replace_schema_metadata({"screening": json.dumps(provenance), "screening_chunk": json.dumps(meta)})
            write_parquet_atomic(table, str(part))
        if meta["scored"] + meta["rejected"] + sum(meta["removed"].values()) != meta["candidates"]:
            raise RuntimeError(f"candidate accounting failed in {part}: {meta}")
        counts["chunks"] += 1
        counts["scored"] += meta["scored"]
        counts["rejected"] += meta["rejected"]
        for reason, n in meta["removed"].items():
            counts["removed"][reason] = counts["removed"].get(reason, 0) + n
        if bar is not None:
            bar.update(meta["candidates"])
    if bar is not None:
        bar.close()

    ranked = rank(out, ref_batch, ref_energy, provenance)
    top = ranked.head(request.top_k)
    top.to_csv(out / "top.csv", index=False)
    (out / "top.md").write_text(_markdown(top))
    summary = counts | {
        "below_known_hull": int((ranked["e_above_known_hull"] < 0).sum()),
        "on_combined_hull": int(ranked["stable_combined"].sum()),
        "seconds": round(time.perf_counter() - started, 2),
        "outputs": {"scored": str(out / "scored"), "ranked": str(out / "ranked.parquet"), "top": str(out / "top.csv")},
        "provenance": provenance,
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def rank(out: Path, ref_batch: CompositionBatch, ref_energy: np.ndarray, provenance: dict) -> pd.DataFrame:
    """All scored candidates with their distance to the hull of known and predicted compounds
    together, ranked by distance to the known hull (most negative first), then by the
    probability of lying below it."""
    scored = pd.read_parquet(out / "scored")
    cand_batch, rejected = parse_formulas(scored["formula"].tolist())
    if rejected:
        raise RuntimeError(f"scored formulas failed to parse: {rejected[:3]}")
    both = CompositionBatch.concat(ref_batch, cand_batch)
    energies = np.concatenate([ref_energy, scored["e_form_pred"].to_numpy()])
    combined = hull_distances(both, energies)
    n_ref = len(ref_batch)
    scored["e_above_combined_hull"] = combined.e_above_hull[n_ref:]
    scored["stable_combined"] = combined.stable[n_ref:]
    scored = scored.sort_values(["e_above_known_hull", "p_below_known_hull", "candidate_id"], ascending=[True, False, True], kind="stable")
    scored.insert(0, "rank", np.arange(1, len(scored) + 1))
    scored["rank_in_system"] = scored.groupby("chemsys").cumcount() + 1
    table = pa.Table.from_pandas(scored, preserve_index=False).replace_schema_metadata({"screening": json.dumps(provenance)})
    write_parquet_atomic(table, str(out / "ranked.parquet"))
    return scored


def _rare_elements(model: Ensemble) -> set[int]:
    from screening.elements import Z_OF

    counts = model.card.get("training_element_counts") or {}
    return {Z_OF[s] for s in Z_OF if counts and counts.get(s, 0) < RARE_ELEMENT_ROWS}


def _prepare(out: Path, request: ScreenRequest) -> None:
    manifest = out / "_manifest.json"
    wanted = {k: v for k, v in asdict(request).items() if k not in ("out", "device", "top_k")}
    if manifest.exists():
        previous = json.loads(manifest.read_text())
        if previous != wanted:
            changed = sorted(k for k in wanted if wanted[k] != previous.get(k))
            raise FileExistsError(f"{out} holds a screening run with different {', '.join(changed)}; choose another --out")
    elif out.exists() and any(out.iterdir()):
        raise FileExistsError(f"output directory {out} exists and is not a screening run; choose another --out")
    for name in ("scored", "rejected"):
        (out / name).mkdir(parents=True, exist_ok=True)
        for stale in (out / name).glob("*.tmp"):
            stale.unlink()
    if not manifest.exists():
        manifest.write_text(json.dumps(wanted, indent=2))


def _markdown(top: pd.DataFrame) -> str:
    lines = ["| rank | formula | system | E_form pred (eV/atom) | ± std | E above known hull (eV/atom) | P(below known hull) | decomposition (known) |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in top.itertuples():
        flag = " ⚠ rare element" if r.rare_element else ""
        lines.append(f"| {r.rank} | {r.formula}{flag} | {r.chemsys} | {r.e_form_pred:.3f} | {r.e_form_std:.3f} | {r.e_above_known_hull:+.3f} | {r.p_below_known_hull:.2f} | {r.known_decomposition} |")
    return "\n".join(lines) + "\n"


def _bar(enabled: bool, total: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="cand", unit_scale=True, desc="screen")
