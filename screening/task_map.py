"""Mapping a function over a stream of tasks, bounded in memory, wherever
:mod:`screening.cluster` says work runs: a Dask scheduler (local cluster or remote), threads of
this process, or in order here. A value every task needs (a scoring context) travels to each
worker once, as one pickled frame; at the end of a run on a local cluster the idle workers'
cores are lent to the tasks still running."""

from __future__ import annotations

import functools
import os
import pickle
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from screening.cluster import dask_client

_NOTHING = object()


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
