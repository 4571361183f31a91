"""screening.task_map: map_bounded in this process (in order, or on threads) and on a cluster,
bounded either way; lent cores; a shared value sent as one frame."""

import os
import threading
import time

import pytest

from screening.task_map import map_bounded


def test_threads_run_every_task_with_the_shared_object_and_stay_bounded():
    shared = object()
    pulled, yielded, seen, names = [0], [0], [], set()

    def jobs():
        for i in range(20):
            assert pulled[0] - yielded[0] <= 3 * 2  # never more than threads x in-flight ahead
            pulled[0] += 1
            yield (i,)

    def task(i, context):
        assert context is shared  # shared, not copied
        names.add(threading.current_thread().name)
        time.sleep(0.01 * (i % 3))
        return i * i

    for result in map_bounded(task, jobs(), workers=0, in_flight_per_worker=2, shared=shared, threads=3):
        seen.append(result)
        yielded[0] += 1
    assert sorted(seen) == [i * i for i in range(20)]
    assert len(names) > 1  # it did run on several threads
    in_order = list(map_bounded(task, ((i,) for i in range(5)), workers=0, shared=shared))
    assert in_order == [0, 1, 4, 9, 16]


def test_a_failing_task_on_a_thread_raises_its_error():
    def task(i):
        if i == 7:
            raise ValueError("part 7 is broken")
        return i

    with pytest.raises(ValueError, match="part 7 is broken"):
        list(map_bounded(task, ((i,) for i in range(20)), workers=0, threads=2))


def _wait_for_a_loan(seconds: float):
    """A task that waits up to ``seconds`` for its worker to be lent threads; returns the loan."""
    from screening.task_map import lent_threads

    end = time.monotonic() + seconds
    while lent_threads() is None and time.monotonic() < end:
        time.sleep(0.01)
    return lent_threads()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="lending needs a second core")
def test_the_last_task_on_a_local_cluster_is_lent_the_idle_workers_cores_until_the_run_ends():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        address = cluster.scheduler_address
        waits = [(0.0,), (0.0,), (30.0,)]  # two end at once; the third waits for its loan
        loans = list(map_bounded(_wait_for_a_loan, waits, scheduler=address, lend_idle_cores=True))
        assert sorted(loans, key=str) == [2, None, None]
        # the loan ends with the run: the next one starts on the workers' own threads
        assert list(map_bounded(_wait_for_a_loan, [(0.2,)], scheduler=address)) == [None]
        # and a run that does not lend lends nothing, even at its end
        assert list(map_bounded(_wait_for_a_loan, [(0.0,), (0.0,), (1.0,)], scheduler=address)) == [None] * 3


def test_a_chunks_forward_pass_on_lent_threads_gives_the_same_scores(monkeypatch):
    import numpy as np
    import torch

    from screening import task_map
    from screening.models import Ensemble, StackedNet
    from screening.scoring import SLICE_ROWS, _predict

    net = StackedNet("irnet17", 86, 2)
    net.reset_parameters([7, 8])
    model = Ensemble(net, torch.zeros(86), torch.ones(86) * 0.1, -1.0, 0.05, {"featurizer": "elemfrac86"})
    values = np.random.default_rng(0).random((2 * SLICE_ROWS + 100, 86)).astype(np.float32)
    mean, std, _ = model.predict(values)
    own = torch.get_num_threads()
    monkeypatch.setattr(task_map, "_LENT_THREADS", own + 1)
    lent_mean, lent_std, extra = _predict(model, values, bf16=False)
    assert torch.get_num_threads() == own  # given back
    assert extra > 0  # the loan's core-seconds are counted with the forward pass
    np.testing.assert_allclose(lent_mean, mean, rtol=0, atol=1e-4)  # whole CPU passes; any x86 CPU
    np.testing.assert_allclose(lent_std, std, rtol=0, atol=1e-4)


def test_a_shared_value_travels_to_workers_as_one_frame_and_arrives_whole():
    import numpy as np
    from distributed.protocol import deserialize, serialize

    from screening.task_map import OneFrame, _with_shared

    many_arrays = {i: np.arange(i % 7 + 1) for i in range(3_000)}  # as an evidence table is
    assert len(serialize(many_arrays)[1]) > 1_000  # what distributed would send otherwise
    header, frames = serialize(OneFrame(many_arrays))
    assert len(frames) <= 2
    arrived = deserialize(header, frames)
    assert isinstance(arrived, OneFrame) and arrived.value.keys() == many_arrays.keys()
    assert all(np.array_equal(arrived.value[i], many_arrays[i]) for i in many_arrays)
    # the task sees the value itself, after its own arguments
    assert _with_shared(lambda a, b, shared: (a, b, len(shared)), 1, 2, arrived) == (1, 2, 3_000)
