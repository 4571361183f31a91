"""Where parallel work runs: an existing ``distributed`` scheduler (by address), a local
cluster of worker processes (the default), or in this process (``workers=0``, no Dask).

Library code never imports Prefect; workers only need ``screening`` importable."""

from __future__ import annotations

import functools
import logging
import os
import pickle
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

_NOTHING = object()


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


def map_bounded(
    fn: Callable[..., Any],
    arguments: Iterable[tuple],
    scheduler: str | None = None,
    workers: int | None = None,
    in_flight_per_worker: int = 2,
    shared: Any = _NOTHING,
    threads: int = 1,
    lend_idle_cores: bool = False,
) -> Iterator[Any]:
    """Apply ``fn(*args)`` (or ``fn(*args, shared)``) to a stream of argument tuples and yield
    results as they complete.

    At most ``in_flight_per_worker`` tasks per worker thread are submitted at a time, so the
    stream is consumed lazily and memory stays bounded by the task size, not the input size.
    ``shared`` (e.g. a model's context) is sent to every worker once, not with every task; a
    worker that joins later (a restarted one) fetches it from its peers. A task whose worker
    dies is run again elsewhere, so ``fn`` must be safe to repeat. ``workers=0`` without a
    scheduler runs everything in this process: in order, or on ``threads`` threads (for work that
    releases the interpreter lock much of the time; ``shared`` is then shared, not copied).
    ``lend_idle_cores``: see :class:`_IdleCoreLender` (tasks read the loan with :func:`lent_threads`)."""
    extra = () if shared is _NOTHING else (shared,)
    if workers == 0 and not scheduler:
        if threads > 1:
            yield from _in_threads(fn, arguments, extra, threads, in_flight_per_worker)
            return
        for args in arguments:
            yield fn(*args, *extra)
        return
    from distributed import as_completed

    name = getattr(fn, "__name__", "task")  # the tasks' name on the dashboard
    with dask_client(scheduler, workers) as client:
        if extra:
            extra = (client.scatter(OneFrame(shared), broadcast=True, hash=False),)
            fn = functools.partial(_with_shared, fn)
        limit = max(1, in_flight_per_worker * sum(client.nthreads().values()))
        pending = as_completed()
        running = 0
        for args in arguments:
            pending.add(client.submit(fn, *args, *extra, key=f"{name}-{uuid.uuid4().hex}"))
            running += 1
            while running >= limit:
                yield next(pending).result()
                running -= 1
        lender = _IdleCoreLender(client) if lend_idle_cores else None
        try:
            for future in pending:
                running -= 1
                if lender is not None:
                    lender.update(running)
                yield future.result()
        finally:
            if lender is not None:
                lender.close()


class OneFrame:
    """A value that travels to Dask workers as one pickled frame. Distributed's own
    serialization sends every numpy array of an object as a frame of its own: a scoring context
    (an evidence table of ~10,000 small arrays, 17 MB) took 0.6 s to reach one worker and 1.2 s
    to reach two, as one frame ~0.05 s. Unpickled once where it arrives; :attr:`value` is it."""

    def __init__(self, value: Any):
        self.value = value

    def __reduce__(self):
        return OneFrame._loads, (pickle.dumps(self.value, protocol=pickle.HIGHEST_PROTOCOL),)

    @staticmethod
    def _loads(frame: bytes) -> OneFrame:
        return OneFrame(pickle.loads(frame))


def _with_shared(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with its last argument, a :class:`OneFrame`, unwrapped."""
    return fn(*args[:-1], args[-1].value)


_LENT_THREADS: int | None = None  # in a worker: threads its task may use, lent by the client


def lent_threads() -> int | None:
    """Threads this worker's task may use for its numeric kernels, lent by the client at the end
    of a run (``None``: no loan, keep its own)."""
    return _LENT_THREADS


def _set_lent_threads(threads: int | None) -> None:
    global _LENT_THREADS
    _LENT_THREADS = threads


class _IdleCoreLender:
    """The end of a run on single-threaded workers of this machine (a local cluster): once the
    stream is exhausted and fewer tasks run than there are workers, the cores of the idle ones
    are lent to those still running, ``cores // running`` threads each (the last 50,000-row
    chunk of a 2-core run: its forward pass 1.9x faster). Anywhere else it lends nothing: a
    worker on another machine, or one with several threads, has no idle neighbour it knows of."""

    def __init__(self, client):
        from distributed.comm import get_address_host

        self.client, self.lent = client, 1
        nthreads = client.nthreads()
        here = _this_machine()
        local = all(get_address_host(a) in here for a in nthreads) and all(n == 1 for n in nthreads.values())
        self.cores = min(len(nthreads), os.cpu_count() or 1) if local else 1

    def update(self, running: int) -> None:
        share = self.cores // max(running, 1)
        if running > 0 and share > self.lent:
            self.client.run(_set_lent_threads, share, on_error="ignore")
            self.lent = share

    def close(self) -> None:
        if self.lent > 1:  # the workers may serve another run (a campaign's next space)
            self.client.run(_set_lent_threads, None, on_error="ignore")
            self.lent = 1


def _this_machine() -> set[str]:
    """The addresses of this machine's network interfaces (loopback included)."""
    import psutil

    return {"localhost"} | {a.address for addresses in psutil.net_if_addrs().values() for a in addresses}


def _in_threads(fn, arguments: Iterable[tuple], extra: tuple, threads: int, in_flight_per_thread: int) -> Iterator[Any]:
    """:func:`map_bounded` on a pool of threads of this process, as bounded as on a cluster."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    with ThreadPoolExecutor(threads) as pool:
        pending: set = set()
        for args in arguments:
            if len(pending) >= threads * in_flight_per_thread:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
            pending.add(pool.submit(fn, *args, *extra))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
