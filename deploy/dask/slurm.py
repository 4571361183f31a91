"""Start a Dask cluster on SLURM (dask-jobqueue) and keep it up; print its scheduler address.

    python deploy/dask/slurm.py --jobs 4                    # 4 SLURM jobs of workers
    screening screen ... --scheduler tcp://HOST:PORT         # or the flow's scheduler parameter
    python deploy/dask/slurm.py --jobs 4 --print-job-script  # see what would be submitted

Run it on a login node (or in a small SLURM job of its own): it hosts the scheduler. The
worker settings come from ``jobqueue.yaml`` beside this file.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import dask
import yaml

CONFIG = Path(__file__).with_name("jobqueue.yaml")


def make_cluster(jobs: int, config: Path = CONFIG, **overrides):
    from dask_jobqueue import SLURMCluster

    dask.config.update(dask.config.config, yaml.safe_load(config.read_text()), priority="new")
    cluster = SLURMCluster(**overrides)
    if jobs:
        cluster.scale(jobs=jobs)
    return cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1, help="SLURM jobs of workers to start")
    parser.add_argument("--scheduler-file", help="also write the address here (for dask.distributed.Client)")
    parser.add_argument("--print-job-script", action="store_true", help="print the job script and exit")
    args = parser.parse_args()
    cluster = make_cluster(0 if args.print_job_script else args.jobs)
    if args.print_job_script:
        print(cluster.job_script())
        cluster.close()
        return
    if args.scheduler_file:
        cluster.scheduler.write_scheduler_file(args.scheduler_file) if hasattr(
            cluster.scheduler, "write_scheduler_file"
        ) else Path(args.scheduler_file).write_text(cluster.scheduler_address)
    print(f"scheduler: {cluster.scheduler_address}  (dashboard {cluster.dashboard_link}); Ctrl-C stops the cluster")
    try:
        while True:
            time.sleep(60)
    except KeyboardInterrupt:
        cluster.close()


if __name__ == "__main__":
    main()
