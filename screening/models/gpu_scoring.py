"""Scoring on a GPU with features in host memory: the copies hidden behind the network.

Per batch of rows the host stages the features in a pinned buffer (torch's parallel copy: one
thread alone, as numpy copies, does not keep up with the GPU), and a second CUDA stream uploads
them while the GPU computes the batch before; the predictions stay on the GPU until the caller
takes them. Buffers and streams are kept between calls (a campaign scores chunk after chunk);
the owner rebuilds its :class:`GpuScorer` when the network's weights change. Calls from several
threads (a Dask worker with more than one) take turns: they share the buffers. Replaying the
network as a CUDA graph was measured and left out: 7.22 against 7.18 M candidates/s for the
shipped model in bf16 on an H200, at 65,536-row batches (docs/benchmarks.md, "GPU").
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import torch

from screening.models.inference import FoldedNet


def weights_version(net: torch.nn.Module) -> tuple[int, ...]:
    """Changes whenever a parameter or buffer is modified in place (or replaced)."""
    return tuple(t._version for t in (*net.parameters(), *net.buffers())) + tuple(
        id(t) for t in (*net.parameters(), *net.buffers())
    )


class GpuScorer:
    """``[n, d_in]`` raw features (numpy, any float dtype) -> ``[members, n]`` float32 predictions
    in target units, on the GPU, by batches of ``batch_size`` rows."""

    def __init__(
        self,
        program: FoldedNet,
        feature_mean: torch.Tensor,
        feature_std: torch.Tensor,
        target_mean: float,
        target_std: float,
        batch_size: int,
    ):
        self.program, self.batch_size = program, batch_size
        self.mean, self.std = feature_mean, feature_std
        self.target_mean, self.target_std = target_mean, target_std
        self.device = feature_mean.device
        self.copy_stream = torch.cuda.Stream(self.device)
        self.staging: list[torch.Tensor] = []
        self.inputs: list[torch.Tensor] = []
        self._lock = threading.Lock()

    def _step(self, x: torch.Tensor) -> torch.Tensor:
        return self.program((x - self.mean) / self.std) * self.target_std + self.target_mean

    def _buffers(self, rows: int, d_in: int) -> None:
        """Two pinned host buffers and two device inputs of ``rows`` rows (kept if large enough)."""
        if self.inputs and self.inputs[0].shape[0] >= rows:
            return
        self.staging = [torch.empty((rows, d_in), dtype=torch.float32, pin_memory=True) for _ in range(2)]
        self.inputs = [torch.empty((rows, d_in), dtype=torch.float32, device=self.device) for _ in range(2)]

    def __call__(self, features: np.ndarray) -> torch.Tensor:
        with self._lock:
            return self._score(features)

    @torch.inference_mode()
    def _score(self, features: np.ndarray) -> torch.Tensor:
        n, d_in = features.shape
        if any(stride < 0 for stride in features.strides):
            features = np.ascontiguousarray(features)  # torch views cannot step backwards
        rows_per = max(min(self.batch_size, n), 1)
        self._buffers(rows_per, d_in)
        with warnings.catch_warnings():  # read-only arrays (from Arrow) are only read here
            warnings.simplefilter("ignore", UserWarning)
            source = torch.from_numpy(features)
        compute = torch.cuda.current_stream(self.device)
        out = torch.empty((self.program.members, n), dtype=torch.float32, device=self.device)
        uploaded: list[torch.cuda.Event | None] = [None, None]
        consumed: list[torch.cuda.Event | None] = [None, None]
        for i, start in enumerate(range(0, n, rows_per)):
            j, rows = i % 2, min(rows_per, n - start)
            if uploaded[j] is not None:
                uploaded[j].synchronize()  # the upload out of this host buffer has finished
            self.staging[j][:rows].copy_(source[start : start + rows])
            with torch.cuda.stream(self.copy_stream):
                if consumed[j] is not None:
                    self.copy_stream.wait_event(consumed[j])  # the GPU has read this input
                self.inputs[j][:rows].copy_(self.staging[j][:rows], non_blocking=True)
                uploaded[j] = torch.cuda.Event()
                uploaded[j].record(self.copy_stream)
            compute.wait_event(uploaded[j])
            out[:, start : start + rows] = self._step(self.inputs[j][:rows])
            consumed[j] = torch.cuda.Event()
            consumed[j].record(compute)
        compute.synchronize()  # every buffer free again before the next call (or thread) writes it
        return out
