"""The screening pipeline: enumerate a chemical space, score every candidate with an ensemble,
place it against the convex hull of known compounds, and rank by predicted stability:
:func:`screening.screen_plan.plan`, then :func:`score` (chunks on a Dask cluster) and
:func:`finish` (the ranking and the tables people read first), or :func:`screen` for all three.

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

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from screening import run_lock
from screening.cluster import BackgroundCluster, background_cluster, started_early
from screening.columns import Col
from screening.hull_plot import hull_picture
from screening.plots import import_in_background
from screening.ranking import markdown_table, rank, system_probabilities
from screening.request import ScreenRequest
from screening.runs import progress_bar, remove_stale_temporaries
from screening.scoring import chunk_meta, score_and_write, warm_worker
from screening.screen_plan import ScreenPlan, chunk_count, plan
from screening.tabular_io import Storage, write_csv_atomic, write_parquet_atomic
from screening.task_map import map_bounded

log = logging.getLogger(__name__)
HULL_PICTURES = 3  # hull pictures of the most promising chemical systems


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
    if scheduler or workers == 0 or all(chunk_count(r) <= 1 for r in requests):
        return None
    return warm_worker, (requests[0].model, requests[0].device)
