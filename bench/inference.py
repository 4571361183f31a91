"""Scoring speed of an ensemble: compositions per second from features already in memory.

.venv/bin/python bench/inference.py                         # IRNet-17 x5, 231 inputs, CPU
.venv/bin/python bench/inference.py --model data/models/default
# on a GPU machine without matminer (bench/device/README.md), with the ways the GPU path can run:
python3 bench/device/run_with_tables.py bench/inference.py --model data/models/default --n 2000000 --variants

``--variants`` (GPU) also times the stacked program (one ``baddbmm`` for all members, the CPU's
way) in the same scorer, other batch sizes, the network alone on features already on the GPU,
and the host-side staging and upload rates, so that the figures say where the time goes.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _machine import forward_flop  # bench/ is on sys.path when a script runs

from screening.models.architectures import StackedNet
from screening.models.ensemble import Ensemble


def _rate(run, n: int, repeats: int = 2) -> float:
    """Candidates per second, the better of ``repeats`` timed calls after one untimed call."""
    run()
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return n / best


def gpu_variants(model: Ensemble, x: np.ndarray, flops: int) -> dict:
    from screening.models.gpu_scoring import GpuScorer
    from screening.models.inference import FoldedNet

    device, batch = model.feature_mean.device, 65536
    stage = torch.empty((batch, x.shape[1]), dtype=torch.float32, pin_memory=True)
    on_device = torch.empty((batch, x.shape[1]), dtype=torch.float32, device=device)
    source = torch.from_numpy(x[:batch])
    gigabytes = stage.numel() * 4 / 1e9
    results = {
        "host_staging_gb_per_s": round(gigabytes * _rate(lambda: stage.copy_(source), 1, repeats=5), 1),
        "upload_gb_per_s": round(gigabytes * _rate(lambda: on_device.copy_(stage, non_blocking=True), 1, 5), 1),
    }
    print(results, flush=True)
    for bf16 in (True, False):
        dtype = torch.bfloat16 if bf16 else torch.float32
        for name, memberwise, batch in (
            ("memberwise", True, 65536),
            ("stacked", False, 65536),
            ("memberwise@16384", True, 16384),
            ("memberwise@131072", True, 131072),
        ):
            if not bf16 and "@" in name:
                continue
            program = FoldedNet(model.net, dtype, memberwise)
            scorer = GpuScorer(
                program, model.feature_mean, model.feature_std, model.target_mean, model.target_std, batch
            )
            rate = _rate(lambda s=scorer: s(x).cpu(), len(x))
            key = f"{'bf16' if bf16 else 'fp32'} {name}"
            results[key] = {"candidates_per_s": round(rate), "tflop_per_s": round(rate * flops / 1e12, 1)}
            if "@" not in name:  # the network alone, inputs on the GPU
                on_gpu = torch.from_numpy(x[:batch]).to(model.feature_mean.device)
                with torch.inference_mode():
                    net_rate = _rate(lambda f=scorer._step, g=on_gpu: [f(g) for _ in range(8)], 8 * batch, repeats=3)
                results[key]["network_alone_candidates_per_s"] = round(net_rate)
                results[key]["network_alone_tflop_per_s"] = round(net_rate * flops / 1e12, 1)
            print(key, results[key], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="model directory (default: untrained IRNet-17 x5)")
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="rows per pass (default: 1,024 on CPU, 65,536 on GPU)"
    )
    parser.add_argument("--variants", action="store_true", help="GPU: time the alternatives too")
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.model:
        model = Ensemble.load(args.model, args.device)
    else:
        net = StackedNet("irnet17", 231, 5)
        net.reset_parameters(list(range(5)))
        model = Ensemble(net, torch.zeros(231), torch.ones(231), 0.0, 1.0, {"featurizer": "magpie145+elemfrac86"}).to(
            args.device
        )
    x = np.random.default_rng(0).normal(size=(args.n, model.net.d_in)).astype(np.float32)
    flops = forward_flop(model)
    results = {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "members": model.members,
        "threads": torch.get_num_threads(),
        "gflop_per_candidate": flops / 1e9,
    }
    for bf16 in (False, True):
        rate = _rate(lambda: model.predict(x, bf16=bf16, batch_size=args.batch_size), args.n)  # noqa: B023
        key = "bf16" if bf16 else "fp32"
        results[f"{key}_candidates_per_s"] = round(rate)
        results[f"{key}_gflop_per_s"] = round(rate * flops / 1e9, 1)
    if args.variants and args.device != "cpu":
        results["variants"] = gpu_variants(model, x, flops)
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    print(
        f"reproduce: .venv/bin/python bench/inference.py --n {args.n} --device {args.device}"
        + (f" --model {args.model}" if args.model else "")
        + (" --variants" if args.variants else "")
    )


if __name__ == "__main__":
    main()
