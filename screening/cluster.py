"""Where parallel work runs: an existing ``distributed`` scheduler (by address), a local
cluster of worker processes (the default), or in this process (``workers=0``, no Dask).

Library code never imports Prefect; workers only need ``screening`` importable."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


@contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: connected to ``scheduler`` if given, else to a new
    ``LocalCluster`` of ``workers`` single-threaded processes, closed on exit."""
    from distributed import Client

    _quiet()
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as err:
            raise ConnectionError(
                f"cannot reach the Dask scheduler at {scheduler!r} ({err}); start one with "
                "`dask scheduler` or leave --scheduler out to use a local cluster"
            ) from err
        with client:
            yield client
        return
    with local_cluster(workers) as cluster, Client(cluster) as client:
        yield client


def local_cluster(workers: int | None = None, preload: tuple[str, ...] = ()):
    """A ``LocalCluster`` of ``workers`` single-threaded processes (default: one per core),
    forked from a server process that has imported ``preload`` (see :func:`_start_method`)."""
    import dask
    from distributed import LocalCluster

    logger = _quiet()
    # Dask sets MALLOC_TRIM_THRESHOLD_=64 KiB for its workers, which (by fixing glibc's mmap
    # threshold) makes every MB-sized numpy temporary a fresh mmap: ~25% slower featurization,
    # most of it page faults. Our workers' memory is bounded by the chunk size, so let glibc
    # keep freed memory for reuse instead.
    environ = {"MALLOC_TRIM_THRESHOLD_": str(256 << 20), "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}
    if logger.getEffectiveLevel() >= logging.WARNING:  # workers' INFO lines (start, stop) too
        environ["DASK_LOGGING__DISTRIBUTED"] = "warning"
    settings = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in environ.items()}
    with dask.config.set(settings | {"distributed.worker.multiprocessing-method": _start_method(preload)}):
        return LocalCluster(
            n_workers=workers or default_workers(),
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.WARNING,
        )


def _start_method(preload: tuple[str, ...]) -> str:
    """How worker processes start: forked from multiprocessing's fork server where the platform
    has one, after that server (one process, started with the first worker and with its
    environment) has imported distributed and ``preload``; two workers that each imported torch
    and the scoring code took ~2 s of a core apiece, while Prefect's server started on the same
    two cores. Elsewhere spawned, as Dask does by default."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return "spawn"
    import dask
    from distributed.utils import get_mp_context

    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        context = get_mp_context()  # distributed's own preload, set once per process
    global _PRELOADED
    if _PRELOADED is None:  # the server starts with the first worker: only then does its preload count
        _PRELOADED = ("distributed", "numpy", "pandas", *preload)
        context.set_forkserver_preload(list(_PRELOADED))
    return "forkserver"


_PRELOADED: tuple[str, ...] | None = None


def _quiet() -> logging.Logger:
    """distributed's logger at WARNING (its INFO chatter drowns what the user needs to see),
    unless the user asked for DEBUG."""
    logger = logging.getLogger("distributed")
    if logger.getEffectiveLevel() < logging.WARNING and not logging.getLogger().isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.WARNING)
    return logger


class BackgroundCluster:
    """A local cluster started in a background thread, so that its worker processes spawn,
    import ``preload`` (torch, the scoring code, the stability model's scikit-learn classifiers:
    seconds; once, in their fork server, where there is one) and call ``warm`` (a function and its
    arguments: what every task will need, loaded once) while the caller plans the run; the
    run's steps then share it by :attr:`address` and it is closed on exit."""

    def __init__(
        self,
        workers: int | None = None,
        preload: tuple[str, ...] = ("screening.scoring", "sklearn.ensemble"),
        warm: tuple[Callable[..., Any], tuple] | None = None,
    ):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(1, thread_name_prefix="dask-start")
        self._cluster = self._pool.submit(self._start, workers, preload, warm)

    @staticmethod
    def _start(workers, preload, warm):
        import importlib

        from distributed import Client

        cluster = local_cluster(workers, preload)
        try:
            with Client(cluster) as client:
                for module in preload:
                    client.run(importlib.import_module, module)
                if warm is not None:
                    client.run(warm[0], *warm[1])
        except BaseException:
            cluster.close()  # not left running behind an error that address will raise
            raise
        return cluster

    @property
    def address(self) -> str:
        return self._cluster.result().scheduler_address

    def __enter__(self) -> BackgroundCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Closes the cluster in the background thread (its workers take ~0.7 s to stop, which
        the ranking that follows need not wait for); the process waits for it before it exits."""
        self._pool.submit(self._close, self._cluster)
        self._pool.shutdown(wait=False)

    @staticmethod
    def _close(started) -> None:
        try:
            started.result().close()
        except Exception:  # it never started: the error, if it matters, was raised by address
            pass


def in_background(fn: Callable[..., Any], *args: Any, name: str = "background") -> Future:
    """``fn(*args)`` started now on a thread of its own; its future (the thread ends with it)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1, thread_name_prefix=name)
    future = pool.submit(fn, *args)
    pool.shutdown(wait=False)
    return future


_EARLY: dict[tuple, BackgroundCluster] = {}


@contextmanager
def started_early(workers: int | None = None, warm: tuple[Callable[..., Any], tuple] | None = None) -> Iterator[None]:
    """Start, now, the :class:`BackgroundCluster` that :func:`background_cluster` is later asked
    for with the same arguments (in this process, within this block), so that its workers start
    while something else does (Prefect's temporary server: ~4 s of one core). Closed on exit if
    nothing took it."""
    key = (workers, warm)
    cluster = _EARLY[key] = BackgroundCluster(workers, warm=warm)
    try:
        yield
    finally:
        if _EARLY.get(key) is cluster:
            del _EARLY[key]
            cluster.close()


def background_cluster(workers: int | None = None, warm: tuple[Callable[..., Any], tuple] | None = None):
    """The cluster :func:`started_early` started with these arguments, else a new one."""
    return _EARLY.pop((workers, warm), None) or BackgroundCluster(workers, warm=warm)
