"""Scoring speed of an ensemble: compositions per second from features already in memory.

.venv/bin/python bench/inference.py                         # IRNet-17 x5, 231 inputs, CPU
.venv/bin/python bench/inference.py --model data/models/default
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from screening.models.architectures import StackedNet
from screening.models.ensemble import Ensemble


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="model directory (default: untrained IRNet-17 x5)")
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="rows per pass (default: 1,024 on CPU, 65,536 on GPU)"
    )
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
    flops = 2 * sum(p.numel() for n, p in model.net.named_parameters() if n.endswith("weight") and p.dim() == 3)
    results = {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "members": model.members,
        "threads": torch.get_num_threads(),
        "gflop_per_candidate": flops / 1e9 / 1,
    }
    for bf16 in (False, True):
        model.predict(x[:2048], bf16=bf16, batch_size=args.batch_size)  # warm-up
        start = time.perf_counter()
        model.predict(x, bf16=bf16, batch_size=args.batch_size)
        seconds = time.perf_counter() - start
        key = "bf16" if bf16 else "fp32"
        results[f"{key}_candidates_per_s"] = round(args.n / seconds)
        results[f"{key}_gflop_per_s"] = round(args.n * flops / seconds / 1e9, 1)
    print(json.dumps(results, indent=2))
    print(
        f"reproduce: .venv/bin/python bench/inference.py --n {args.n} --device {args.device}"
        + (f" --model {args.model}" if args.model else "")
    )


if __name__ == "__main__":
    main()
