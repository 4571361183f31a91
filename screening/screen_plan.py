"""A screening run's plan: the request checked, its candidate space counted, the model, its
stability model and the known compounds (and their hull) loaded, before anything is scored
(:func:`prepare`, which writes nothing, can run early, while Prefect's server starts); then the
output folder locked and started (:func:`plan`). :mod:`screening.screen` scores and ranks it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from screening import __version__, run_lock
from screening.cluster import in_background
from screening.composition import CompositionBatch, parse_formulas
from screening.datasets import formula_targets, read_formula_table, sha256_of
from screening.elements import Z_OF
from screening.enumerate import CandidateSpace, Grid, reduced_formulas, space
from screening.evidence import KnownCompounds
from screening.hull import ReferenceHull, restrict
from screening.models.ensemble import Ensemble, load_model
from screening.request import BUDGET_CANDIDATES, ScreenRequest
from screening.row_lookup import KnownCompositions
from screening.runs import check_folder, start_folder
from screening.scoring import ScoringContext, keep_model
from screening.stability import StabilityModel
from screening.tabular_io import Storage

log = logging.getLogger(__name__)
RARE_ELEMENT_ROWS = 50  # training compositions containing an element below which it is "rare"
BYTES_PER_CANDIDATE = 160  # scored part + ranked.parquet, measured on the main job and the 1.1M benchmark
CANDIDATES_PER_SECOND = 3_500  # end to end on 2 CPU cores, fp32, the shipped model (docs/benchmarks.md)


def read_reference(paths: list[str]) -> tuple[CompositionBatch, np.ndarray, pd.DataFrame]:
    """Known compounds: ``formula,target`` tables, lowest energy per composition; and the rows
    that could not be used (row, formula, reason, source), which the run writes to
    ``reference_rejected.csv`` (never silently dropped)."""
    frames = [read_formula_table(p).assign(source=p) for p in paths]
    if not frames:
        batch, _ = parse_formulas([])
        return batch, np.zeros(0), pd.DataFrame(columns=["row", "formula", "reason", "source"])
    frame = pd.concat(frames, ignore_index=True)
    batch, energy, rejected = formula_targets(frame, "reference tables")
    table = pd.DataFrame([(r.index, r.formula, r.reason) for r in rejected], columns=["row", "formula", "reason"])
    table["source"] = frame["source"].iloc[table["row"]].to_numpy() if len(table) else []
    keys = pd.Series(batch.composition_keys())
    lowest = (
        pd.DataFrame({"key": keys, "e": energy})
        .sort_values("e", kind="stable")
        .drop_duplicates("key")
        .index.sort_values()
    )
    return batch.select(lowest.to_numpy()), energy[lowest.to_numpy()], table


def write_rejections(rejected: pd.DataFrame, out: Path) -> None:
    path = out / "reference_rejected.csv"
    rejected.to_csv(path, index=False)
    log.warning("%d reference rows rejected; see %s", len(rejected), path)


@dataclass
class ScreenPlan:
    """A prepared run: the candidate space, what every chunk's scoring needs, and the known
    compounds the ranking places candidates against."""

    request: ScreenRequest
    out: Path
    candidates: CandidateSpace
    total: int
    context: ScoringContext
    ref_batch: CompositionBatch
    ref_energy: np.ndarray
    seconds: float = 0.0  # time taken to plan
    stability: object | None = None  # the model's StabilityModel: p_stable orders the ranking

    @property
    def n_chunks(self) -> int:
        return -(-self.total // self.request.chunk_size)


def plan(request: ScreenRequest) -> ScreenPlan:
    """Validate the request, count the space, load the model card and the known compounds, and
    build their hull (or take what :func:`planned_early` prepared); then lock the output folder
    and start the run there. Fails before anything is scored if any of that is wrong."""
    started = time.perf_counter()
    early = _EARLY_PLANS.pop(_request_key(request), None)
    prepared, inputs, rejected = early.result() if early is not None else prepare(request)
    out = prepared.out
    if not request.reference:
        log.warning(
            "no reference compounds: candidates are placed against the elements alone (a hull at 0 eV/atom), "
            "so most will be called below the known hull"
        )
    # prepared early, on a thread: the folder may have changed since; else prepare() has just checked it
    manifest = _check_folder(out, request, inputs) if early is not None else _wanted(request, inputs)
    run_lock.acquire(out)  # released by finish(), or by the OS when this process ends
    _start_folder(out, manifest)  # only now, with every input validated, is the folder a run's
    if len(rejected):
        write_rejections(rejected, out)
    log.info(
        "screening %s candidates in %d chemical systems against %d known compounds",
        f"{prepared.total:,}",
        len(prepared.candidates.systems),
        len(prepared.ref_batch),
    )
    prepared.seconds = time.perf_counter() - started
    return prepared


_EARLY_PLANS: dict[str, Future] = {}


@contextmanager
def planned_early(request: ScreenRequest) -> Iterator[None]:
    """Start preparing :func:`plan` of ``request`` now, on a thread (counting the space, loading
    the model and the known compounds, building their hull: ~2 s of one core), for a caller with
    seconds to wait first (a Prefect flow whose temporary API server is starting); :func:`plan`
    of the same request within this block takes it, or the error it raised. Nothing is written
    or locked until then."""
    key = _request_key(request)
    future = _EARLY_PLANS[key] = in_background(prepare, request, name="plan-early")
    try:
        yield
    finally:
        if _EARLY_PLANS.get(key) is future:
            del _EARLY_PLANS[key]


def _request_key(request: ScreenRequest) -> str:
    return json.dumps(asdict(request), sort_keys=True, default=str)


def prepare(request: ScreenRequest) -> tuple[ScreenPlan, dict, pd.DataFrame]:
    """What :func:`plan` computes, without writing or locking anything: the plan, the hashes of
    its inputs (model, reference data: a folder resumes only with the same), and the reference
    rows that could not be used."""
    started = time.perf_counter()
    out = Path(request.out)
    candidates = candidate_space(request)
    total = candidates.size()
    if total == 0:
        raise ValueError(
            f"the request enumerates no candidates ({len(candidates.systems)} chemical systems of "
            f"{request.min_arity} to {request.max_arity} elements on this grid): give more elements or a system"
        )
    check_budget(total, out, request.max_candidates)
    model_dir = Path(request.model)
    model = load_model(str(model_dir), request.device)  # checks checkpoint and device before any work
    model_hash = sha256_of(model_dir / "model.safetensors")
    # a run resumes only with the same request, weights, uncertainty calibration and reference data
    inputs = {"model_sha256": model_hash, "reference_sha256": [sha256_of(p) for p in request.reference]}
    if model.card.get("uncertainty"):
        inputs["model_uncertainty"] = {k: model.card["uncertainty"][k] for k in ("scale", "floor")}
    stability = load_stability(model_dir)
    if stability is not None:
        inputs["stability_sha256"] = stability.record["sha256"]
    _check_folder(out, request, inputs)  # fails before the reference data is read
    elements = frozenset(z for s in candidates.systems for z in s)
    all_known, all_energy, rejected = read_reference(request.reference)
    ref_batch, ref_energy = restrict(all_known, all_energy, elements)
    provenance = {
        "model": str(request.model),
        "model_sha256": model_hash,
        "model_card": {
            k: model.card.get(k) for k in ("architecture", "members", "featurizer", "created", "uncertainty")
        },
        "featurizer": model.featurizer,
        "code_version": __version__,
        "request": asdict(request),
        "reference_compounds": len(ref_batch),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    context = ScoringContext(
        model_dir=str(model_dir.resolve()),
        model_sha256=model_hash,
        device=request.device,
        bf16=request.bf16,
        hull=ReferenceHull(ref_batch, ref_energy),
        known=KnownCompositions(ref_batch),
        charge_neutral=request.charge_neutral,
        exclude_known=request.exclude_known,
        rare=frozenset(_rare_elements(model)),
        provenance=provenance,
        reference_names=reduced_formulas(ref_batch),
        evidence=KnownCompounds(all_known, all_energy, elements) if stability is not None else None,
        stability_sha256=stability.record["sha256"] if stability is not None else None,
    )
    keep_model(context, model)  # scoring in this process reuses it; workers load their own
    seconds = time.perf_counter() - started
    return (
        ScreenPlan(request, out, candidates, total, context, ref_batch, ref_energy, seconds, stability),
        inputs,
        rejected,
    )


def check_budget(total: int, out: Path, max_candidates: int | None) -> None:
    """Refuse, before any work, a space that would not fit the disk, or that is larger than the
    budget without an explicit ``max_candidates`` that covers it."""
    import shutil

    size = total * BYTES_PER_CANDIDATE
    hours = total / CANDIDATES_PER_SECOND / 3600
    what = (
        f"the space holds {total:,} candidates (~{size / 1e9:,.1f} GB of output, ~{hours:,.1f} h at "
        f"~{CANDIDATES_PER_SECOND:,} candidates/s on 2 CPU cores)"
    )
    existing = next(p for p in (out, *out.resolve().parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if size > free:
        raise ValueError(
            f"{what}, but {existing} has {free / 1e9:,.1f} GB free: narrow the space or choose another --out"
        )
    limit = BUDGET_CANDIDATES if max_candidates is None else max_candidates
    if total > limit:
        raise ValueError(f"{what}, over the limit of {limit:,}: narrow it, or pass --max-candidates {total} to run it")


def load_stability(model_dir: Path):
    """The model directory's stability model (``stability.json``/``.pkl``), or ``None`` if it
    has none (then the ranking is by energy above the known hull)."""

    if not (model_dir / "stability.json").exists():
        return None
    return StabilityModel.load(model_dir)


def candidate_space(request: ScreenRequest) -> CandidateSpace:
    grid = Grid(request.max_atoms, request.max_amount)
    return space(request.elements, request.max_arity, grid, request.systems, request.min_arity)


def chunk_count(request: ScreenRequest) -> int:
    """Chunks of the request's space (0 for a request that is not valid: :func:`plan` says why)."""
    try:
        return -(-candidate_space(request).size() // request.chunk_size)
    except Exception:  # an invalid request: plan() says why
        return 0


def _rare_elements(model: Ensemble) -> set[int]:

    counts = model.card.get("training_element_counts") or {}
    return {Z_OF[s] for s in Z_OF if counts and counts.get(s, 0) < RARE_ELEMENT_ROWS}


def _wanted(request: ScreenRequest, inputs: dict) -> dict:
    """The manifest of a run of ``request`` on ``inputs`` (the hashes of model and reference data)."""
    wanted = {
        k: v for k, v in asdict(request).items() if k not in ("out", "device", "top_k", "max_candidates")
    } | inputs
    if request.min_arity == 2:  # at its default it is left out: folders written before it existed resume
        del wanted["min_arity"]
    return wanted


def _check_folder(out: Path, request: ScreenRequest, inputs: dict) -> dict:
    """The manifest this request needs; refuses a folder that holds another run or other files.
    Writes nothing (a start that fails later leaves the folder as it was)."""
    wanted = _wanted(request, inputs)
    check_folder(
        Storage(str(out)),
        wanted,
        "screening run",
        "rerun with the same request to resume it, or choose another --out",
        ignore=(run_lock.LOCK_NAME,),
    )
    return wanted


def _start_folder(out: Path, wanted: dict) -> None:
    start_folder(Storage(str(out)), wanted, ("scored", "rejected"))
