"""map_bounded in this process: in order, or on threads, bounded either way."""

import threading
import time

import pytest

from screening.cluster import map_bounded


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
