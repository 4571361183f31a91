"""Scoring one chunk of candidates: filter, featurize, predict, place against the known hull,
and write the chunk's Parquet parts. This is what runs on a Dask worker (or in-process).

Everything a worker needs besides the chunk travels in one :class:`ScoringContext` (sent to
each worker once); the model is loaded from its directory once per worker process and kept,
never shipped through the task graph. A chunk's output is written atomically and named by the
chunk's position, so a task that runs twice (a retry, a worker killed after writing) writes the
same file twice and a re-run skips chunks already on disk.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from screening.columns import Col
from screening.decomposition_text import mixture_strings
from screening.enumerate import CandidateChunk
from screening.evidence import FEATURES as EVIDENCE_FEATURES
from screening.evidence import KnownCompounds, Placement, load_tables
from screening.featurizers import get_featurizer
from screening.hull import ReferenceHull
from screening.models.calibration import predictive_std, probability_below
from screening.models.ensemble import CPU_BATCH, Ensemble, load_model
from screening.oxidation import charge_neutral
from screening.row_lookup import KnownCompositions
from screening.runs import part_name
from screening.stability import StabilityModel, logit
from screening.tabular_io import write_parquet_atomic

log = logging.getLogger(__name__)


@dataclass
class ScoringContext:
    """What scoring a chunk needs, beyond the chunk: shipped to every worker once."""

    model_dir: str
    model_sha256: str
    device: str
    bf16: bool
    hull: ReferenceHull  # known compounds of the screened elements
    known: KnownCompositions | None = None  # all known compositions, for exclude_known
    charge_neutral: bool = False
    exclude_known: bool = True
    rare: frozenset[int] = frozenset()  # atomic numbers the model saw few training rows of
    provenance: dict = field(default_factory=dict)
    reference_names: list[str] | None = None  # reduced formulas of the hull's compounds (decompositions)
    evidence: KnownCompounds | None = (
        None  # all known compounds (with a stability model: its evidence stage runs per chunk)
    )
    stability_sha256: str | None = None


_MODELS: dict[tuple[str, str, str], Ensemble] = {}
_STABILITY: dict[tuple[str, str], object] = {}


def worker_stability(context: ScoringContext):
    """The model directory's stability model, loaded once per process (checked against its hash)."""
    return _loaded_stability(context.model_dir, context.stability_sha256 or "")


def _loaded_stability(model_dir: str, sha256: str):
    key = (model_dir, sha256)
    if key not in _STABILITY:
        _STABILITY.clear()  # one at a time, as the ensemble
        _STABILITY[key] = StabilityModel.load(model_dir)
    return _STABILITY[key]


def worker_model(context: ScoringContext) -> Ensemble:
    """The ensemble, loaded once per process (per model directory, content hash and device)."""
    return _loaded_model(context.model_dir, context.model_sha256, context.device)


def _loaded_model(model_dir: str, model_sha256: str, device: str) -> Ensemble:
    key = (model_dir, model_sha256, device)
    if key not in _MODELS:
        _MODELS.clear()  # one at a time: a worker serving a new run drops the last one
        _MODELS[key] = load_model(model_dir, device)
    return _MODELS[key]


def keep_model(context: ScoringContext, model: Ensemble) -> None:
    """Make ``model`` this process's ensemble for ``context``."""
    _MODELS.clear()
    _MODELS[(context.model_dir, context.model_sha256, context.device)] = model


def warm_worker(model_dir: str, device: str) -> None:
    """Load what scoring needs (the ensemble with its featurizer's tables, the stability model,
    the evidence tables: ~1.5 s of imports and reads) under the keys a run's context asks for,
    so that a worker started before the run is planned has it before its first chunk. A worker
    that cannot (a bad model folder, which the run's plan reports) loads at its first chunk."""
    from screening.datasets import sha256_of

    try:
        directory = Path(model_dir).resolve()
        _loaded_model(str(directory), sha256_of(directory / "model.safetensors"), device)
        record = directory / "stability.json"
        if record.exists():
            _loaded_stability(str(directory), json.loads(record.read_text())["sha256"])
            load_tables()
    except Exception as err:  # reported where it matters, by plan and the first chunk
        log.debug("worker not warmed for %s: %s", model_dir, err)


def score_chunk(chunk: CandidateChunk, context: ScoringContext, model: Ensemble, seconds: dict | None = None):
    """Filter, featurize and score one chunk; returns the scored table, the rejected rows and
    how many candidates each filter removed. ``seconds`` collects the time of each step."""

    clock = _Clock(seconds if seconds is not None else {})
    keep = np.ones(len(chunk), bool)
    removed = {}
    if context.charge_neutral:
        neutral = charge_neutral(chunk.batch)
        removed["not charge neutral"] = int((keep & ~neutral).sum())
        keep &= neutral
    if context.exclude_known and context.known is not None and len(context.known):
        is_known = context.known.contains(chunk.batch)
        removed["already known"] = int((keep & is_known).sum())
        keep &= ~is_known
    rows = np.flatnonzero(keep)
    clock("filter")
    candidates = chunk.batch.select(rows)
    table = get_featurizer(model.featurizer).featurize_batch_float32(candidates)
    rejected = pd.DataFrame(
        {
            Col.candidate_id: chunk.candidate_id[rows[[r.index for r in table.rejections]]],
            "formula": pd.Series([r.formula for r in table.rejections], dtype=object),
            "reason": pd.Series([r.reason for r in table.rejections], dtype=object),
        }
    )
    scored_rows = rows[table.index]
    batch = candidates.select(table.index)
    clock("featurize")
    mean, std, lent_seconds = _predict(model, table.values, context.bf16)
    clock("predict")
    clock.seconds["predict"] += lent_seconds  # core-seconds: the forward pass's share of the machine
    hull_e, vertex_ids, weights = context.hull.place(batch)
    e_above = mean - hull_e
    p_below = probability_below(e_above, predictive_std(std, model.card.get("uncertainty")))
    rare = list(context.rare)
    scored = pd.DataFrame(
        {
            Col.candidate_id: chunk.candidate_id[scored_rows],
            "formula": batch.formula,
            Col.chemsys: chunk.chemsys[scored_rows],
            Col.n_elements: batch.n_elements.astype(np.int8),
            Col.e_form_pred: mean.astype(np.float64),
            Col.e_form_std: std.astype(np.float64),
            Col.known_hull_energy: hull_e,
            Col.e_above_known_hull: e_above,
            Col.p_below_known_hull: p_below,
            Col.known_decomposition: mixture_strings(
                vertex_ids, weights, context.reference_names or context.hull.batch.formula, digits=4
            ),
            Col.rare_element: np.isin(batch.z, rare).any(axis=1) if rare else np.zeros(len(batch), bool),
        }
    )
    clock("hull")
    if context.evidence is not None:
        features = context.evidence.features(batch, Placement(context.hull, hull_e, vertex_ids, weights))
        scored[Col.evidence_logit] = logit(worker_stability(context).evidence_probability(features))
        for name in (Col.log_system_known, Col.log_sub_hull_compounds):
            scored[name] = features[:, EVIDENCE_FEATURES.index(name)]
        clock("evidence")
    return scored, rejected, removed


SLICE_ROWS = 8 * CPU_BATCH  # rows predicted between looks at the threads lent (whole CPU passes: the same results)


def _predict(model: Ensemble, values: np.ndarray, bf16: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """The ensemble's mean and spread. On a CPU, in slices, each on the threads the cluster lends
    this worker (:func:`screening.task_map.lent_threads`: its neighbours idle at the end of a run)
    or its own; the results do not depend on it. Also returns the extra core-seconds the loan used."""
    import torch

    from screening.task_map import lent_threads

    if model.feature_mean.device.type != "cpu":
        mean, std, _ = model.predict(values, bf16=bf16)
        return mean, std, 0.0
    own, extra = torch.get_num_threads(), 0.0
    mean, std = np.empty(len(values), np.float32), np.empty(len(values), np.float32)
    try:
        for start in range(0, len(values), SLICE_ROWS):
            threads = max(own, lent_threads() or own)
            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)
            began = time.perf_counter()
            rows = slice(start, start + SLICE_ROWS)
            mean[rows], std[rows], _ = model.predict(values[rows], bf16=bf16)
            extra += (threads - own) * (time.perf_counter() - began)
    finally:
        torch.set_num_threads(own)
    return mean, std, extra


class _Clock:
    """Adds the time since the last call to ``seconds[step]``."""

    def __init__(self, seconds: dict):
        self.seconds, self.last = seconds, time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = self.seconds.get(step, 0.0) + now - self.last
        self.last = now


def chunk_meta(out: str | Path, index: int) -> dict | None:
    """The accounting of a chunk already written (``None`` if it is not on disk)."""
    part = Path(out) / "scored" / part_name(index)
    if not part.exists():
        return None
    return json.loads(pq.read_schema(part).metadata[b"screening_chunk"])


def score_and_write(index: int, chunk: CandidateChunk, out: str, context: ScoringContext) -> dict:
    """Score chunk ``index`` and write ``scored/`` and ``rejected/`` parts; returns its counts.

    The rejected part is written first, so a scored part on disk means the chunk is complete."""
    done = chunk_meta(out, index)
    if done is not None:
        return done | {"skipped": True}
    seconds: dict[str, float] = {}
    scored, rejected, removed = score_chunk(chunk, context, worker_model(context), seconds)
    meta = {
        "chunk": index,
        "candidates": len(chunk),
        "scored": len(scored),
        "rejected": len(rejected),
        "removed": removed,
    }
    if meta["scored"] + meta["rejected"] + sum(removed.values()) != meta["candidates"]:
        raise RuntimeError(f"candidate accounting failed in chunk {index}: {meta}")
    write_parquet_atomic(
        pa.Table.from_pandas(rejected, preserve_index=False), str(Path(out) / "rejected" / part_name(index))
    )
    table = pa.Table.from_pandas(scored, preserve_index=False)
    metadata = {"screening": json.dumps(context.provenance), "screening_chunk": json.dumps(meta)}
    started = time.perf_counter()
    write_parquet_atomic(table.replace_schema_metadata(metadata), str(Path(out) / "scored" / part_name(index)))
    seconds["write"] = time.perf_counter() - started
    return meta | {"skipped": False, "seconds": seconds}
