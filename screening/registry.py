"""A model registry: a folder of hash-named models with aliases, and the fixed benchmark on which
a candidate must not be worse than production to replace it (:mod:`screening.promotion`).

    ROOT/benchmark.json        the fixed benchmark: known and hidden tables, by path and sha256
    ROOT/models/<key>/         a registered model folder (card, weights, stability model), never changed
    ROOT/aliases.json          {"production": "<key>", "candidate": "<key>"}, replaced atomically
    ROOT/history.jsonl         one line per registration, evaluation and promotion, with its figures

A model's key is the hash of its weights and stability model (:func:`model_key`), the same key a
campaign files its work under: promoting a model is pointing ``production`` at another key, and
campaigns that screen with ``production`` see new work on their next run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from screening.datasets import sha256_of

MODEL_FILES = ("model.safetensors", "stability.pkl")  # what a model's key is made of


def model_key(model_dir: str | Path) -> str:
    """12 hex digits of the sha256 of the weights (and the stability model, when there is one)."""
    model = Path(model_dir)
    if not (model / "model.safetensors").exists():
        raise FileNotFoundError(f"{model} is not a model folder (no model.safetensors)")
    parts = [sha256_of(model / name) for name in MODEL_FILES if (model / name).exists()]
    return hashlib.sha256("".join(parts).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Table:
    path: str
    sha256: str

    @classmethod
    def of(cls, path: str | Path) -> Table:
        if not Path(path).is_file():
            raise FileNotFoundError(f"benchmark table {path} does not exist")
        return cls(str(path), sha256_of(path))


@dataclass(frozen=True)
class Benchmark:
    """The screening situation every model of a registry is judged on: ``hidden``'s compounds are
    held out of the ``known`` hull (validation MAE on ``hidden``; the ranking metrics of its
    systems' enumerated candidates, cross-fitted by system)."""

    known: tuple[Table, ...]
    hidden: Table

    def to_json(self) -> dict:
        return {"known": [t.__dict__ for t in self.known], "hidden": self.hidden.__dict__}

    @classmethod
    def from_json(cls, raw: dict) -> Benchmark:
        return cls(tuple(Table(**t) for t in raw["known"]), Table(**raw["hidden"]))


class Registry:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not (self.root / "benchmark.json").exists():
            raise FileNotFoundError(
                f"{self.root} is not a model registry (no benchmark.json): create it with "
                "`screening registry init ROOT --known TRAIN.csv --hidden VAL.csv`"
            )

    @classmethod
    def create(cls, root: str | Path, known: list[str], hidden: str) -> Registry:
        """A new registry, or the existing one at ``root`` if its benchmark is the same tables;
        a different benchmark is refused (figures measured on other rows do not compare)."""
        benchmark = Benchmark(tuple(Table.of(p) for p in known), Table.of(hidden))
        path = Path(root) / "benchmark.json"
        if path.exists():
            existing = Benchmark.from_json(json.loads(path.read_text()))
            if _contents(existing) != _contents(benchmark):
                raise FileExistsError(
                    f"{root} is a registry with another benchmark ({existing.hidden.path}): its figures would not "
                    "compare with these; choose another folder"
                )
            return cls(root)
        (Path(root) / "models").mkdir(parents=True, exist_ok=True)
        _write_atomic(path, benchmark.to_json())
        return cls(root)

    def benchmark(self) -> Benchmark:
        return Benchmark.from_json(json.loads((self.root / "benchmark.json").read_text()))

    def aliases(self) -> dict[str, str]:
        path = self.root / "aliases.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def keys(self) -> list[str]:
        return sorted(p.name for p in (self.root / "models").iterdir() if p.is_dir() and not p.name.startswith("."))

    def resolve(self, name: str) -> Path:
        """The folder of an alias (``production``) or a key."""
        key = self.aliases().get(name, name)
        folder = self.root / "models" / key
        if not folder.is_dir():
            known = ", ".join(sorted(self.aliases())) or "none yet"
            raise KeyError(f"{self.root}: no model or alias {name!r} (aliases: {known})")
        return folder

    def register(self, model_dir: str | Path) -> str:
        """Copy a model folder in under its key (a model registered twice is one entry)."""
        from screening.models.ensemble import load_model

        load_model(str(model_dir), "cpu")  # weights checked against the card before anything is copied
        key = model_key(model_dir)
        target = self.root / "models" / key
        if not target.exists():
            staging = self.root / "models" / f".{key}-{uuid.uuid4().hex[:6]}"
            shutil.copytree(model_dir, staging, ignore=shutil.ignore_patterns("train_state", "rediscovery"))
            os.replace(staging, target)
            self.log({"event": "registered", "key": key, "source": str(model_dir)})
        return key

    def set_alias(self, alias: str, key: str) -> None:
        self.resolve(key)
        _write_atomic(self.root / "aliases.json", self.aliases() | {alias: key})

    def log(self, record: dict) -> dict:
        record = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")} | record
        with open(self.root / "history.jsonl", "a") as f:
            f.write(json.dumps(record, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return record

    def history(self) -> list[dict]:
        path = self.root / "history.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _contents(benchmark: Benchmark) -> tuple:
    return tuple(sorted(t.sha256 for t in benchmark.known)), benchmark.hidden.sha256


def _write_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
