"""The screening pipeline: enumerate a chemical space, score every candidate with an ensemble,
place it against the convex hull of known compounds, and rank by predicted stability.

Output directory::

    _manifest.json             the request (so a re-run resumes only the same request)
    scored/part-00000.parquet  every candidate of a chunk, scored (written atomically; a re-run
                               skips complete chunks)
    rejected/part-00000.parquet candidates the model cannot featurize, with the reason
    ranked.parquet             all scored candidates with the combined-hull columns, ranked
    top.csv, top.md            the top candidates; top_by_system.csv the best of each system
    summary.json               counts, timings, model, provenance
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from screening import __version__, run_lock
from screening.cluster import BackgroundCluster, background_cluster, in_background, map_bounded, started_early
from screening.columns import Col
from screening.composition import CompositionBatch, parse_formulas
from screening.datasets import formula_targets, read_formula_table, sha256_of
from screening.elements import Z_OF
from screening.enumerate import CandidateSpace, Grid, reduced_formulas, space
from screening.evidence import KnownCompounds
from screening.hull import ReferenceHull, restrict
from screening.hull_plot import hull_picture
from screening.models.ensemble import Ensemble, load_model
from screening.plots import import_in_background
from screening.ranking import markdown_table, rank, system_probabilities
from screening.request import BUDGET_CANDIDATES, ScreenRequest
from screening.row_lookup import KnownCompositions
from screening.runs import check_folder, progress_bar, remove_stale_temporaries, start_folder
from screening.scoring import ScoringContext, chunk_meta, keep_model, score_and_write, warm_worker
from screening.stability import StabilityModel
from screening.tabular_io import Storage, write_csv_atomic, write_parquet_atomic

log = logging.getLogger(__name__)
HULL_PICTURES = 3  # hull pictures of the most promising chemical systems
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
    manifest = _check_folder(out, request, inputs)  # again: the folder may have changed since it was prepared
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


def score(
    plan: ScreenPlan,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    on_chunk: Callable[[int, int, int], None] | None = None,
    budget: int | None = None,
    deadline: float | None = None,
) -> dict:
    """Score every chunk not yet on disk: on the Dask scheduler at ``scheduler``, else on a
    local cluster of ``workers`` processes, else (``workers=0``, or a space of one chunk) in
    this process. ``on_chunk(done, total, resumed)`` is called as chunks complete (candidates
    done so far, of which ``resumed`` were already on disk). Returns the candidate accounting
    over all chunks, ``complete`` True.

    A campaign's share of the work: with ``budget`` (candidates) or ``deadline`` (a
    ``time.monotonic()`` value), no new chunk is started once that many candidates have been
    started or the deadline has passed; the chunks started finish and are kept, the rest waits
    for the next run, and the accounting covers the chunks on disk (``complete`` False)."""
    out = str(plan.out)
    started_candidates = [0]

    def todo():
        for i, chunk in enumerate(plan.candidates.chunks(plan.request.chunk_size)):
            if (budget is not None or deadline is not None) and chunk_meta(out, i) is None:
                if (budget is not None and started_candidates[0] >= budget) or (
                    deadline is not None and time.monotonic() >= deadline
                ):
                    return
                started_candidates[0] += len(chunk)
            yield i, chunk

    if workers is None and not scheduler and plan.n_chunks <= 1:
        workers = 0  # one chunk: a cluster would only add its start-up time
    started = time.perf_counter()
    counts = {
        "candidates": plan.total,
        "scored": 0,
        "rejected": 0,
        "chunks": 0,
        "chunks_skipped": 0,
        "removed": {},
        "chunk_seconds": {},
        "candidates_started": 0,  # in chunks scored by this call (not found on disk)
    }
    bar, done, resumed = progress_bar(progress, plan.total, "cand", "screen"), 0, 0
    results = map_bounded(
        score_and_write,
        ((i, chunk, out) for i, chunk in todo()),
        scheduler=scheduler,
        workers=workers,
        shared=plan.context,
        lend_idle_cores=True,
    )
    for meta in results:
        counts["chunks"] += 1
        counts["chunks_skipped"] += bool(meta["skipped"])
        counts["scored"] += meta["scored"]
        counts["rejected"] += meta["rejected"]
        for reason, n in meta["removed"].items():
            counts["removed"][reason] = counts["removed"].get(reason, 0) + n
        for step, t in meta.get("seconds", {}).items():
            counts["chunk_seconds"][step] = counts["chunk_seconds"].get(step, 0.0) + t
        done += meta["candidates"]
        resumed += meta["candidates"] if meta["skipped"] else 0
        counts["candidates_started"] += 0 if meta["skipped"] else meta["candidates"]
        if bar is not None:
            bar.update(meta["candidates"])
        if on_chunk is not None:
            on_chunk(done, plan.total, resumed)
    if bar is not None:
        bar.close()
    complete = counts["chunks"] == plan.n_chunks
    if complete and counts["scored"] + counts["rejected"] + sum(counts["removed"].values()) != plan.total:
        raise RuntimeError(
            f"candidate accounting failed: {counts} for a space of {plan.total:,} in {plan.n_chunks} chunks"
        )
    counts["chunk_seconds"] = {k: round(v, 2) for k, v in counts["chunk_seconds"].items()}  # summed over workers
    remove_stale_temporaries(Storage(str(plan.out)), ("scored", "rejected"))  # a worker killed mid-write
    return counts | {"complete": complete, "score_seconds": round(time.perf_counter() - started, 2)}


def finish(plan: ScreenPlan, counts: dict, seconds: float, scheduler: str | None = None) -> dict:
    """Rank, write the top tables and the summary (``seconds``: the run's time so far); the
    parts placed on the combined hull on the Dask cluster at ``scheduler`` if given."""
    started = time.perf_counter()
    import_in_background()  # for the hull pictures, drawn while the ranking sorts

    def picture(chemsys: str, candidates: pd.DataFrame) -> Path:
        return hull_picture(chemsys, candidates, plan.ref_batch, plan.ref_energy, plan.out / f"hull_{chemsys}.png")

    ranking = rank(
        plan.out,
        plan.ref_batch,
        plan.ref_energy,
        plan.context.provenance,
        top_k=plan.request.top_k,
        per_system=min(plan.request.top_k, 5),
        systems=HULL_PICTURES,
        stability=plan.stability,
        scheduler=scheduler,
        while_sorting=picture,
    )
    write_csv_atomic(ranking.top, plan.out / "top.csv")
    (plan.out / "top.md").write_text(markdown_table(ranking.top))
    by_system, outputs, all_told = ranking.by_system, {}, None
    if plan.stability is not None and plan.stability.system is not None:
        systems = system_probabilities(plan.out / "ranked.parquet", plan.stability)
        all_told = float((systems["p_system"] * systems["p_stable_sum"]).sum())
        write_parquet_atomic(pa.Table.from_pandas(systems, preserve_index=False), str(plan.out / "systems.parquet"))
        by_system = by_system.merge(systems[[Col.chemsys, "p_system"]], on=Col.chemsys, how="left")
        outputs["systems"] = str(plan.out / "systems.parquet")
    write_csv_atomic(by_system, plan.out / "top_by_system.csv")
    pictures = [  # drawn while the ranking sorted, unless the sorted file named other systems
        str(ranking.made_while_sorting.get(chemsys) or picture(chemsys, candidates))
        for chemsys, candidates in ranking.best_systems.items()
    ]
    summary = counts | {
        "below_known_hull": ranking.below_known_hull,
        "expected_stable": None if ranking.expected_stable is None else round(ranking.expected_stable, 1),
        # sum of p_system x p_stable: p_stable assumes each system hides a stable compound
        "expected_stable_with_p_system": None if all_told is None else round(all_told, 1),
        "likely_stable": ranking.likely_stable,
        "on_combined_hull": ranking.on_combined_hull,
        "plan_seconds": round(plan.seconds, 2),
        "rank_seconds": round(time.perf_counter() - started, 2),
        "seconds": round(seconds + time.perf_counter() - started, 2),
        "outputs": {
            "scored": str(plan.out / "scored"),
            "ranked": str(plan.out / "ranked.parquet"),
            "top": str(plan.out / "top.csv"),
            "top_by_system": str(plan.out / "top_by_system.csv"),
            "hull_pictures": pictures,
        }
        | outputs,
        "provenance": plan.context.provenance,
    }
    (plan.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    run_lock.release(plan.out)
    return summary


def weighed_by_p_system(summary: dict) -> str:
    """`` if each system hides one, N weighed by p_system`` for a summary line (with a model that
    has a system-level classifier): p_stable assumes its system hides a stable compound, so its
    sum overstates a space of many systems that hide none (on the validation table's grids with
    such systems: 1.8x / 3.0x for ternaries / quaternaries; the weighed sum 0.86x of the true count,
    bench/results/ranking-null-systems.json)."""
    told = summary.get("expected_stable_with_p_system")
    return "" if told is None else f" if each system hides one, {told:,.1f} weighed by p_system"


def screen(
    request: ScreenRequest, progress: bool = True, scheduler: str | None = None, workers: int | None = None
) -> dict:
    """The whole pipeline: :func:`plan`, :func:`score`, :func:`finish`."""
    started, prepared = time.perf_counter(), None
    try:
        with run_cluster(request, scheduler, workers) as place:
            prepared = plan(request)  # while the cluster's workers start
            counts = score(prepared, place.address, workers, progress)
        # the local cluster is closed before ranking (its idle workers would hold their memory); see run_cluster
        return finish(prepared, counts, time.perf_counter() - started, scheduler)
    finally:
        if prepared is not None:
            run_lock.release(prepared.out)


@dataclass(frozen=True)
class ScoringPlace:
    """Where chunks are scored: the user's ``scheduler``, else the ``local`` cluster started for
    the run, else this process."""

    scheduler: str | None = None
    local: BackgroundCluster | None = None

    @property
    def address(self) -> str | None:
        """The scheduler's address (waiting, for a local cluster, until it is up); ``None``: here."""
        return self.scheduler or (self.local.address if self.local else None)


@contextmanager
def run_cluster(
    requests: ScreenRequest | list[ScreenRequest], scheduler: str | None = None, workers: int | None = None
) -> Iterator[ScoringPlace]:
    """Where the scoring of one or more runs happens. A local Dask cluster is started in the
    background (its workers import torch and load the model while a run is planned; or taken
    from :func:`cluster_started_early`) unless they need none: a ``scheduler`` was given,
    ``workers=0``, or every space fits one chunk (scored in-process). Ranking runs on a given
    ``scheduler``, not on this cluster, which is closed first: on one machine its workers are no
    faster than one process (ranking 1.1M candidates on 2 cores: 13.9 s on the cluster, 13.7 s
    in one process on one thread, 9.1-10.1 s on the two it uses)."""
    warm = _local_cluster_warm(requests, scheduler, workers)
    if warm is None:
        yield ScoringPlace(scheduler)
        return
    with background_cluster(workers, warm) as cluster:
        yield ScoringPlace(None, cluster)


@contextmanager
def cluster_started_early(
    requests: ScreenRequest | list[ScreenRequest], scheduler: str | None = None, workers: int | None = None
) -> Iterator[None]:
    """Start now the local cluster :func:`run_cluster` will use for these arguments, if it will
    use one (for a caller with seconds to wait first, such as a Prefect flow whose temporary API
    server is starting)."""
    warm = _local_cluster_warm(requests, scheduler, workers)
    with started_early(workers, warm) if warm is not None else nullcontext():
        yield


def _local_cluster_warm(requests, scheduler, workers) -> tuple | None:
    """What a local cluster's workers load before their first chunk (the first run's model), or
    ``None`` if the runs need no local cluster."""
    requests = requests if isinstance(requests, list) else [requests]
    if scheduler or workers == 0 or all(_chunks(r) <= 1 for r in requests):
        return None
    return warm_worker, (requests[0].model, requests[0].device)


def candidate_space(request: ScreenRequest) -> CandidateSpace:
    grid = Grid(request.max_atoms, request.max_amount)
    return space(request.elements, request.max_arity, grid, request.systems, request.min_arity)


def _chunks(request: ScreenRequest) -> int:
    try:
        return -(-candidate_space(request).size() // request.chunk_size)
    except Exception:  # an invalid request: plan() says why
        return 0


def _rare_elements(model: Ensemble) -> set[int]:

    counts = model.card.get("training_element_counts") or {}
    return {Z_OF[s] for s in Z_OF if counts and counts.get(s, 0) < RARE_ELEMENT_ROWS}


def _check_folder(out: Path, request: ScreenRequest, inputs: dict) -> dict:
    """The manifest this request needs; refuses a folder that holds another run or other files.
    Writes nothing (a start that fails later leaves the folder as it was)."""
    wanted = {
        k: v for k, v in asdict(request).items() if k not in ("out", "device", "top_k", "max_candidates")
    } | inputs
    if request.min_arity == 2:  # at its default it is left out: folders written before it existed resume
        del wanted["min_arity"]
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
