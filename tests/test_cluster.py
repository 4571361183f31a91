"""screening.cluster: a local cluster's workers, forked from one server that imported the scoring code."""

import os

import pytest

ORIGINS = """
import json, os
import psutil


def origin():
    import torch

    parent = psutil.Process().parent()
    return {
        "parent": parent.pid,
        "parent_is_fork_server": "forkserver" in " ".join(parent.cmdline()),
        "server_loaded_torch": any("libtorch" in m.path for m in parent.memory_maps()),  # before forking
        "server_loaded_sklearn": any("_hist_gradient_boosting" in m.path for m in parent.memory_maps()),
        "malloc": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
        "torch_threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    from distributed import Client

    from screening.cluster import BackgroundCluster

    cluster = BackgroundCluster(2)
    with Client(cluster.address) as client:
        print(json.dumps(list(client.run(origin).values())))
    cluster.close()
"""


@pytest.mark.skipif(
    "forkserver" not in __import__("multiprocessing").get_all_start_methods(), reason="no fork server here"
)
def test_local_workers_are_forked_from_one_server_that_imported_the_scoring_code(tmp_path):
    """In a process of its own: the fork server is started once per process, with the first
    cluster's preload."""
    import json
    import subprocess
    import sys

    script = tmp_path / "origins.py"
    script.write_text(ORIGINS)
    # as a command starts: without what earlier clusters of this process left in its environment
    # (a variable already set wins over Dask's configuration)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "OMP_", "MKL_", "OPENBLAS_"))}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    origins = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(origins) == 2 and origins[0]["parent"] == origins[1]["parent"]
    for origin in origins:
        assert origin["parent_is_fork_server"] and origin["server_loaded_torch"] and origin["server_loaded_sklearn"]
        assert origin["malloc"] == str(256 << 20) and origin["torch_threads"] == 1  # the environment Dask sets
