"""The ElemNet-scale campaign (deploy/campaigns/elemnet-scale.yaml: every ternary and quaternary
system of the 40 most common elements, <= 10 atoms, 19.8 million candidates) planned, counted and
run as far as a budget allows, on a Dask cluster of separate processes (``dask scheduler`` and
``dask worker``, as on a real cluster). Prints the plan's time, the scoring rate, the peak memory
of every process (this one, the scheduler, the workers), the catalog's size and query time, and
what the whole campaign would take at that rate.

    .venv/bin/python bench/campaign_scale.py --minutes 8          # 2 workers x 1 thread (a 2-core machine)
    .venv/bin/python bench/campaign_scale.py --minutes 8 --workers 16   # a bigger machine
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
from _machine import matmul_rates  # bench/ is on sys.path when a script runs
from _memory import PeakMemory

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = ROOT / "deploy" / "campaigns" / "elemnet-scale.yaml"


def start_cluster(folder: Path, workers: int) -> tuple[str, list[subprocess.Popen]]:
    """A scheduler and ``workers`` single-threaded worker processes, each its own command, as a
    cluster's job scripts start them; returns the scheduler's address."""
    dask = str(Path(sys.executable).with_name("dask"))
    info = folder / "scheduler.json"
    env = os.environ | {"MALLOC_TRIM_THRESHOLD_": str(256 << 20), "DASK_LOGGING__DISTRIBUTED": "warning"}
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--scheduler-file", str(info), "--port", "0", "--dashboard-address", ":0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(120):
        if info.exists():
            break
        time.sleep(0.5)
    worker = subprocess.Popen(
        [dask, "worker", "--scheduler-file", str(info), "--nworkers", str(workers), "--nthreads", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from distributed import Client

    address = json.loads(info.read_text())["address"]
    with Client(address, timeout="60s") as client:
        client.wait_for_workers(workers, timeout=120)
    return address, [worker, scheduler]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=8.0, help="the run's budget")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", default=str(ROOT / "runs" / "bench-campaign-scale"))
    parser.add_argument("--keep", action="store_true", help="continue the campaign already in --root")
    args = parser.parse_args()
    from screening.campaign import load_campaign, plan_campaign, run_campaign
    from screening.catalog import top

    root = Path(args.root)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    campaign = dataclasses.replace(load_campaign(CAMPAIGN), root=root, budget_minutes=args.minutes)
    started = time.perf_counter()
    plan = plan_campaign(campaign)
    plan_seconds = time.perf_counter() - started
    total = sum(r["candidates"] for r in plan)
    rates = matmul_rates()

    address, processes = start_cluster(root, args.workers)
    try:
        with PeakMemory(0.2) as memory:
            started = time.perf_counter()
            record = run_campaign(campaign, scheduler=address, log=lambda m: print(m, flush=True))
            seconds = time.perf_counter() - started
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=60)
    scored = sum(s["candidates_scored"] for s in record["spaces"])
    catalog = root / "catalog"
    rows = 0
    if catalog.exists():
        import pyarrow.parquet as pq

        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in catalog.rglob("*.parquet"))
        started = time.perf_counter()
        best = top(root, 20)
        query_seconds = time.perf_counter() - started
    rate = scored / seconds
    result = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 1e9:.0f} GB",
        "matmul_gflop_per_s": rates,  # torch.mm 2048^2 in this run: the VM's pace, which the forward pass follows
        "campaign": str(CAMPAIGN.relative_to(ROOT)),
        "candidates_in_campaign": total,
        "plan_seconds": round(plan_seconds, 2),
        "dask": f"scheduler + {args.workers} worker processes x 1 thread (separate commands)",
        "budget_minutes": args.minutes,
        "run_seconds": round(seconds, 1),
        "candidates_scored": scored,
        "rate_per_s": round(rate),
        "spaces": record["spaces"],
        "stopped": record["stopped"],
        "peak_memory_gb_all_processes": round(memory.peak / 1e9, 2),
        "work_bytes_per_candidate": round(folder_bytes(root / "work") / max(scored, 1), 1),
        "catalog_rows": rows,
        "catalog_bytes_per_row": round(folder_bytes(catalog) / rows, 1) if rows else None,
        "catalog_top20_seconds": round(query_seconds, 3) if rows else None,
        "whole_campaign_hours_at_this_rate": round(total / rate / 3600, 1),
        "reproduce": f".venv/bin/python bench/campaign_scale.py --minutes {args.minutes:g} --workers {args.workers}",
    }
    print(json.dumps(result, indent=2))
    if rows:
        print(best.head(5).to_string(index=False))
    out = ROOT / "bench" / "results" / "campaign-scale.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
