"""The screening flow on a real Dask cluster (a scheduler and two worker processes on
loopback); one worker is killed mid-run and the output must still be complete and identical to
a single-machine run."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import LONG_RUN, LONG_RUN_CANDIDATES, PROJECT_ROOT, assert_same_screening

from flows.screen_candidates import screen_candidates


@pytest.fixture
def dask_cluster(tmp_path):
    from distributed import Client

    scheduler_file = tmp_path / "scheduler.json"
    env = os.environ | {"PYTHONPATH": str(PROJECT_ROOT)}
    scheduler = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--dashboard-address",
            ":0",
            "--scheduler-file",
            str(scheduler_file),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers = []
    try:
        for _ in range(60):
            if scheduler_file.exists():
                break
            time.sleep(0.25)
        for name in ("w1", "w2"):
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_worker",
                        "--scheduler-file",
                        str(scheduler_file),
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--name",
                        name,
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        with Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            address = client.scheduler.address
        yield address, workers
    finally:
        for process in [*workers, scheduler]:
            process.kill()
            process.wait()


def test_screen_flow_survives_a_killed_dask_worker(
    prefect_api, dask_cluster, long_run_reference, single_machine_run, tmp_path
):
    address, workers = dask_cluster
    out = tmp_path / "run"
    parts_at_kill = []
    finished = threading.Event()

    def kill_first_worker_mid_run():
        deadline = time.monotonic() + 900  # a loaded machine can take minutes to write 3 parts
        while time.monotonic() < deadline and not finished.is_set():
            done = len(list((out / "scored").glob("part-*.parquet"))) if (out / "scored").exists() else 0
            if done >= 3:
                workers[0].send_signal(signal.SIGKILL)
                parts_at_kill.append(done)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_first_worker_mid_run)
    killer.start()
    summary = screen_candidates(
        model=str(PROJECT_ROOT / "data/models/default"),
        out=str(out),
        reference=long_run_reference,
        scheduler=address,
        device="cpu",
        **LONG_RUN,
    )
    finished.set()
    killer.join()
    n_chunks = -(-LONG_RUN_CANDIDATES // LONG_RUN["chunk_size"])
    assert parts_at_kill and parts_at_kill[0] < n_chunks, "the worker was not killed mid-run"
    assert workers[0].wait(timeout=10) == -signal.SIGKILL
    assert summary["candidates"] == LONG_RUN_CANDIDATES and summary["chunks"] == n_chunks
    assert_same_screening(out, single_machine_run)
