"""End-to-end screening benchmark: enumerate, featurize, score, hull, rank and write a space of
about a million candidates, through the Prefect flow as ``python -m flows`` runs it (embedded
API, local Dask cluster) or the library alone, with the shipped default ensemble. Prints wall
time, the time of every step, the forward pass's share against this machine's matmul rate, the
orchestration overhead and the peak memory of the whole process tree (flow process, Prefect's
temporary server, Dask workers).

    .venv/bin/python bench/screen.py                       # 1,123,375 candidates, flow, fp32
    .venv/bin/python bench/screen.py --bf16 --no-flow      # library only, bfloat16 matmuls
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import psutil
import torch  # noqa: F401 (imported before the clock starts, as before: not part of the figures)
from _machine import forward_flop, matmul_rates  # bench/ is on sys.path when a script runs
from _memory import PeakMemory

ROOT = Path(__file__).resolve().parents[1]
# 20 elements, systems of 2..4, <= 10 atoms: 190*31 + 1140*109 + 4845*205 = 1,123,375 candidates
ELEMENTS = "Li,Na,K,Mg,Ca,Sr,Ba,Ti,V,Cr,Mn,Fe,Co,Ni,Cu,Zn,Al,Si,S,O"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--elements", default=ELEMENTS)
    parser.add_argument("--max-arity", type=int, default=4)
    parser.add_argument("--max-atoms", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per core)")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--no-flow", action="store_true", help="the library alone, without Prefect")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench-screen"))
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    shutil.rmtree(args.out, ignore_errors=True)
    rates = matmul_rates()
    options = dict(
        model=str(ROOT / "data/models/default"),
        out=args.out,
        elements=args.elements.split(","),
        max_arity=args.max_arity,
        max_atoms=args.max_atoms,
        chunk_size=args.chunk_size,
        bf16=args.bf16,
        reference=[f"{args.data}/mp_e_form/train.csv", f"{args.data}/mp_e_form/val.csv"],
    )
    started = time.perf_counter()
    with PeakMemory(0.2) as memory:
        if args.no_flow:
            from screening.screen import ScreenRequest, screen

            summary = screen(ScreenRequest(**options), progress=True, workers=args.workers)
        else:  # exactly as `python -m flows screen-candidates -p ...` runs it
            from flows.__main__ import main as run_flow

            given = {**options, "workers": args.workers}
            command = ["screen-candidates"] + [f"-p{k}={json.dumps(v)}" for k, v in given.items() if v is not None]
            if run_flow(command):
                raise SystemExit("the flow failed")
            summary = json.loads((Path(args.out) / "summary.json").read_text())
    wall = time.perf_counter() - started

    from screening.models.ensemble import load_model

    model = load_model(options["model"], "cpu")
    flop = forward_flop(model)
    steps = summary["chunk_seconds"]
    workers = args.workers or min(psutil.cpu_count(), 8)
    forward_rate = summary["scored"] * flop / (steps["predict"] / workers) / 1e9  # per-worker time -> machine rate
    library = summary["plan_seconds"] + summary["score_seconds"] + summary["rank_seconds"]
    forward_wall = steps["predict"] / workers  # wall time of the forward passes (workers run in parallel)
    figures = {
        "candidates": summary["candidates"],
        "scored": summary["scored"],
        "chunks": summary["chunks"],
        "wall_s": round(wall, 1),
        "candidates_per_s": round(summary["candidates"] / wall),
        "plan_s": summary["plan_seconds"],
        "score_s": summary["score_seconds"],
        "rank_s": summary["rank_seconds"],
        "chunk_step_cpu_s": steps,
        "workers": workers,
        "precision": "bf16" if args.bf16 else "fp32",
        "mflop_per_candidate": round(flop / 1e6, 1),
        "matmul_gflop_per_s": rates,
        "forward_gflop_per_s": round(forward_rate, 1),
        "forward_share_of_matmul_rate": round(forward_rate / rates["bf16" if args.bf16 else "fp32"], 3),
        "forward_wall_s": round(forward_wall, 1),
        "everything_else_over_forward": round((wall - forward_wall) / forward_wall, 3),
        "orchestration_overhead_s": None if args.no_flow else round(wall - library, 1),
        "orchestration_overhead_share": None if args.no_flow else round((wall - library) / wall, 3),
        "peak_memory_gb": round(memory.peak / 1e9, 2),
        "below_known_hull": summary["below_known_hull"],
    }
    print(json.dumps(figures, indent=2))
    flags = (
        [f"--chunk-size {args.chunk_size}"]
        + (["--bf16"] if args.bf16 else [])
        + (["--no-flow"] if args.no_flow else [])
    )
    print(f"reproduce: .venv/bin/python bench/screen.py {' '.join(flags)}")


if __name__ == "__main__":
    main()
