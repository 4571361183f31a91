"""A trained ensemble: the stacked network, its input/target standardization, and its card.

On disk a model is a directory with ``model.safetensors`` (weights and normalizer statistics,
no pickles) and ``card.json`` (architecture, hyper-parameters, featurizer, training data and
hash, metrics, code version, date). Loading rebuilds the network from the card and checks every
tensor against it, so a corrupt, truncated or mismatched checkpoint fails with a clear error.
Loading (:func:`load_model`), device choice and predictions on tables (:func:`predict_frame`) are
here, apart from training, so that scoring never imports the training code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from screening.composition import Rejection, parse_formulas
from screening.datasets import sha256_of
from screening.featurizers import get_featurizer
from screening.models.architectures import StackedNet, get_architecture
from screening.models.calibration import predictive_std
from screening.models.gpu_scoring import GpuScorer, weights_version
from screening.models.inference import FoldedNet

WEIGHTS = "model.safetensors"
CARD = "card.json"
_NORMALIZER_KEYS = ("feature_mean", "feature_std", "target_mean", "target_std")


CPU_BATCH, GPU_BATCH = 1024, 65536  # rows per forward pass


class ModelLoadError(ValueError):
    """A model directory that cannot be loaded; says which file and why."""


@dataclass
class Ensemble:
    net: StackedNet
    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    target_mean: float
    target_std: float
    card: dict
    _scorers: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # see _gpu_scorer
    _programs: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # see _cpu_program

    @property
    def featurizer(self) -> str:
        return self.card["featurizer"]

    @property
    def members(self) -> int:
        return self.net.members

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_scorers": {}, "_programs": {}}  # a copy starts without buffers and streams

    def to(self, device: str | torch.device) -> Ensemble:
        self.net.to(device)
        self.feature_mean = self.feature_mean.to(device)
        self.feature_std = self.feature_std.to(device)
        self._scorers.clear()
        self._programs.clear()
        return self

    def predict_members(self, features: np.ndarray, batch_size: int | None = None, bf16: bool = False) -> np.ndarray:
        """``[members, n]`` predictions in target units for raw (unstandardized) features."""
        members = self._members(features, batch_size, bf16)
        return members if isinstance(members, np.ndarray) else members.cpu().numpy()

    def predict(self, features: np.ndarray, **kwargs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean and standard deviation (population, over members) per row, and the members."""
        members = self._members(features, **kwargs)
        if isinstance(members, np.ndarray):
            return members.mean(axis=0), members.std(axis=0), members
        mean, std = members.mean(dim=0), members.std(dim=0, correction=0)  # on the GPU
        return mean.cpu().numpy(), std.cpu().numpy(), members.cpu().numpy()

    @torch.no_grad()
    def _members(self, features: np.ndarray, batch_size: int | None = None, bf16: bool = False):
        """The members' predictions: numpy on a CPU, a tensor left on the GPU there."""
        if features.ndim != 2 or features.shape[1] != self.net.d_in:
            raise ValueError(
                f"model expects {self.net.d_in} features ({self.featurizer}), got array of shape {features.shape}"
            )
        device = self.feature_mean.device
        if batch_size is None:  # on a CPU, passes whose activations stay in cache (docs/benchmarks.md)
            batch_size = CPU_BATCH if device.type == "cpu" else GPU_BATCH
        self.net.eval()
        dtype = torch.bfloat16 if bf16 else torch.float32
        if device.type == "cuda":
            return self._gpu_scorer(dtype, batch_size)(features)
        program = self._cpu_program(dtype)
        out = np.empty((self.members, len(features)), np.float32)
        for start in range(0, len(features), batch_size):
            x = torch.as_tensor(features[start : start + batch_size], dtype=torch.float32, device=device)
            y = program((x - self.feature_mean) / self.feature_std)
            out[:, start : start + len(x)] = (y * self.target_std + self.target_mean).cpu().numpy()
        return out

    def _cpu_program(self, dtype: torch.dtype) -> FoldedNet:
        """The network with BatchNorm folded in, kept while the weights stay as they are (folding
        the shipped default takes ~30 ms; a chunk is scored in several calls)."""
        version = weights_version(self.net)
        if dtype not in self._programs or self._programs[dtype][0] != version:
            self._programs[dtype] = (version, FoldedNet(self.net, dtype))
        return self._programs[dtype][1]

    def _gpu_scorer(self, dtype: torch.dtype, batch_size: int) -> GpuScorer:
        """Copies overlapped with the network (:mod:`.gpu_scoring`); the scorer and its buffers
        are kept while the weights and normalizer stay as they are."""
        key = (dtype, batch_size)
        normalizer = (id(self.feature_mean), id(self.feature_std), self.target_mean, self.target_std)
        version = (weights_version(self.net), normalizer)
        if key not in self._scorers or self._scorers[key][0] != version:
            program = FoldedNet(self.net, dtype)  # BatchNorm folded in; one member at a time
            scorer = GpuScorer(
                program, self.feature_mean, self.feature_std, self.target_mean, self.target_std, batch_size
            )
            self._scorers[key] = (version, scorer)
        return self._scorers[key][1]

    # ---- persistence ---------------------------------------------------------------------
    def tensors(self, half: bool = False) -> dict[str, torch.Tensor]:
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        if half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        state["feature_mean"] = self.feature_mean.cpu().float()
        state["feature_std"] = self.feature_std.cpu().float()
        state["target_mean"] = torch.tensor([self.target_mean], dtype=torch.float64)
        state["target_std"] = torch.tensor([self.target_std], dtype=torch.float64)
        return state

    def save(self, directory: str | Path, half: bool = False) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / (WEIGHTS + ".tmp")
        save_file(self.tensors(half), str(tmp), metadata={"format": "screening-ensemble"})
        card = dict(self.card, weights_dtype="float16" if half else "float32", weights_sha256=sha256_of(tmp))
        tmp.replace(directory / WEIGHTS)
        (directory / (CARD + ".tmp")).write_text(json.dumps(card, indent=2) + "\n")
        (directory / (CARD + ".tmp")).replace(directory / CARD)
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> Ensemble:
        directory = Path(directory)
        if not directory.is_dir():
            raise ModelLoadError(f"model directory {directory} does not exist")
        card_path, weights_path = directory / CARD, directory / WEIGHTS
        for path in (card_path, weights_path):
            if not path.exists():
                raise ModelLoadError(f"{path} is missing: not a model directory")
        try:
            card = json.loads(card_path.read_text())
        except json.JSONDecodeError as err:
            raise ModelLoadError(f"{card_path} is not valid JSON ({err})") from err
        for key in ("architecture", "d_in", "members", "featurizer"):
            if key not in card:
                raise ModelLoadError(f"{card_path} has no {key!r}")
        try:
            arch = get_architecture(card["architecture"])
        except ValueError as err:
            raise ModelLoadError(f"{card_path}: {err}") from err
        if "weights_sha256" in card and sha256_of(weights_path) != card["weights_sha256"]:
            raise ModelLoadError(
                f"{weights_path} does not match the sha256 recorded in {card_path}: the weights are corrupt or were "
                "replaced"
            )
        try:
            tensors = load_file(str(weights_path))
        except (SafetensorError, OSError, ValueError) as err:
            raise ModelLoadError(f"{weights_path} is corrupt or truncated ({err})") from err
        net = StackedNet(arch, int(card["d_in"]), int(card["members"]))
        expected = net.state_dict()
        problems = [k for k in (*expected, *_NORMALIZER_KEYS) if k not in tensors]
        problems += [
            f"{k} has shape {tuple(tensors[k].shape)}, expected {tuple(v.shape)}"
            for k, v in expected.items()
            if k in tensors and tensors[k].shape != v.shape
        ]
        if problems:
            raise ModelLoadError(f"{weights_path} does not match its card ({card['architecture']}): {problems[:3]}")
        net.load_state_dict({k: tensors[k].float() for k in expected})
        width = tensors["feature_mean"].numel()
        if width != net.d_in:
            raise ModelLoadError(f"{weights_path}: normalizer has {width} features, network {net.d_in}")
        model = cls(
            net,
            tensors["feature_mean"].float(),
            tensors["feature_std"].float(),
            float(tensors["target_mean"]),
            float(tensors["target_std"]),
            card,
        )
        return model.to(device)


def check_featurizer(model: Ensemble) -> None:
    """The featurizer named in the card must exist here and produce the network's width."""
    try:
        width = len(get_featurizer(model.featurizer).feature_labels())
    except ValueError as err:
        raise ModelLoadError(f"model's featurizer: {err}") from err
    if width != model.net.d_in:
        raise ModelLoadError(
            f"featurizer {model.featurizer!r} gives {width} features but the model expects {model.net.d_in}"
        )


def resolve_device(device: str = "auto") -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no GPU is available; use --device cpu")
    return torch.device(device)


def load_model(model_dir: str, device: str = "auto") -> Ensemble:
    """The ensemble in ``model_dir`` on ``device``, its weights and featurizer checked."""
    model = Ensemble.load(model_dir, resolve_device(device))
    check_featurizer(model)
    return model


def predict_frame(
    model: Ensemble, frame: pd.DataFrame, members: bool = False, bf16: bool = False
) -> tuple[pd.DataFrame, list[Rejection]]:
    """``formula, pred_mean, pred_std`` (the members' raw spread), ``pred_sigma`` (the card's
    calibrated predictive std, the one screening uses, when the model has one), ``dilute`` (an
    element under 0.1 at.%: the value is an extrapolation) and with ``members`` each member's
    ``pred_member_k``, for every featurizable row."""
    table = get_featurizer(model.featurizer).featurize_frame_float32(frame)
    mean, std, each = model.predict(table.values, bf16=bf16)
    out = pd.DataFrame({"formula": table.formula, "pred_mean": mean, "pred_std": std})
    if model.card.get("uncertainty"):
        out["pred_sigma"] = predictive_std(std, model.card["uncertainty"])
    out["dilute"] = parse_formulas(table.formula.tolist())[0].dilute()
    if members:
        for k, values in enumerate(each):
            out[f"pred_member_{k}"] = values
    out.index = table.index
    return out, table.rejections
