"""Reference data: the shared CSVs loaded by path (never copied into the project), checked
against ``data/manifest.json``; or, for users elsewhere, the public Matbench download."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from screening.composition import CompositionBatch, Rejection, parse_formulas

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MANIFEST_PATH = PROJECT_ROOT / "data" / "manifest.json"
DATA_DIR_ENV = "SCREENING_DATA_DIR"
# The shared tables (name, split), in the order the benchmarks read them.
REFERENCE_SPLITS = (
    ("mp_e_form", "train"),
    ("mp_e_form", "val"),
    ("oqmd_hf", "train"),
    ("mp_e_hull", "train"),
    ("mp_e_hull", "val"),
)


def shared_data_dir() -> Path:
    """``$SCREENING_DATA_DIR`` if set, else ``../shared/data`` beside the project root."""
    return Path(os.environ.get(DATA_DIR_ENV) or PROJECT_ROOT.parent / "shared" / "data")


DATA_PLACEHOLDER = "{data}"


def data_path(path: str) -> str:
    """``path`` with a leading ``{data}`` replaced by :func:`shared_data_dir`: deployments name
    reference tables as ``{data}/mp_e_form/train.csv`` and each installation says where its data
    is with ``$SCREENING_DATA_DIR``, not with the layout of a checkout."""
    if path.startswith(DATA_PLACEHOLDER):
        return str(shared_data_dir()) + path[len(DATA_PLACEHOLDER) :]
    return path


def manifest() -> dict:
    return json.loads(MANIFEST_PATH.read_text())


def reference_path(name: str, split: str = "train") -> Path:
    """Path of a reference CSV, e.g. ``reference_path("mp_e_form", "val")``."""
    files = manifest()["files"]
    key = f"{name}/{split}.csv"
    if key not in files:
        raise KeyError(f"no reference dataset {key!r}; known: {', '.join(sorted(files))}")
    path = shared_data_dir() / key
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: set {DATA_DIR_ENV} to the folder holding the reference data, "
            "or use screening.datasets.load_matbench() to download the public Matbench set"
        )
    return path


def load_reference(name: str, split: str = "train") -> pd.DataFrame:
    """A reference CSV as a ``formula, target`` frame. ``keep_default_na=False`` keeps the
    formula ``NaN`` (sodium nitride) a string."""
    return read_formula_table(reference_path(name, split))


def read_formula_table(path: str | Path) -> pd.DataFrame:
    """A ``formula[,target]`` CSV. ``target`` becomes numbers (unparseable values NaN, their text
    kept in ``target_as_written`` for messages); an empty, binary or non-UTF-8 file, or a folder,
    is one error naming the file (and the line)."""
    if Path(path).is_dir():
        raise ValueError(f"{path} is a folder; give a CSV file")
    try:
        frame = pd.read_csv(path, keep_default_na=False, dtype={"formula": str, "target": str})
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty: it needs a header row with a 'formula' column") from None
    except UnicodeDecodeError as err:
        line = Path(path).read_bytes()[: err.start].count(b"\n") + 1
        raise ValueError(f"{path} is not UTF-8 text (line {line}): save it as a UTF-8 CSV") from None
    if "formula" not in frame.columns:
        raise KeyError(f"{path} has no 'formula' column; it has {list(frame.columns)}")
    if "target" in frame.columns:
        text = frame["target"]
        frame["target"] = pd.to_numeric(text, errors="coerce")
        frame["target_as_written"] = text
    return frame


def require_target(frame: pd.DataFrame, source: str) -> None:
    if "target" not in frame.columns:
        raise KeyError(
            f"{source} has no 'target' column (e.g. formation energy per atom, eV/atom); it has {list(frame.columns)}"
        )


def finite_targets(frame: pd.DataFrame, rows: np.ndarray, formulas) -> tuple[np.ndarray, np.ndarray, list[Rejection]]:
    """The targets of ``rows`` (positions in ``frame``, with their ``formulas``): a mask of the
    finite ones, their values, and a rejection for each other, the value shown as written."""
    target = pd.to_numeric(frame["target"], errors="coerce").to_numpy(np.float64)[rows]
    finite = np.isfinite(target)
    written = frame["target_as_written"] if "target_as_written" in frame.columns else frame["target"]
    rejected = [
        Rejection(int(i), str(f), f"target {str(written.iloc[i])!r} is not a finite number")
        for i, f in zip(np.asarray(rows)[~finite], np.asarray(formulas, dtype=object)[~finite])
    ]
    return finite, target[finite], rejected


def formula_targets(frame: pd.DataFrame, source: str) -> tuple[CompositionBatch, np.ndarray, list[Rejection]]:
    """The rows of a ``formula,target`` table as compositions with finite targets; every other row
    as a rejection (in input order) saying why: the one reader of such tables for hulls and
    reference data (training reads them through :func:`finite_targets` after featurizing)."""
    require_target(frame, source)
    batch, rejected = parse_formulas(frame["formula"].tolist())
    finite, target, bad = finite_targets(frame, batch.index, batch.formula)
    return batch.select(finite), target, sorted(rejected + bad, key=lambda r: r.index)


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_reference_data() -> list[str]:
    """Differences between the shared files and the manifest (empty when they match)."""
    problems = []
    for key, entry in manifest()["files"].items():
        path = shared_data_dir() / key
        if not path.exists():
            problems.append(f"{key}: missing")
        elif sha256_of(path) != entry["sha256"]:
            problems.append(f"{key}: sha256 differs from the manifest")
    return problems


def load_matbench(name: str = "matbench_mp_e_form") -> pd.DataFrame:
    """Download a Matbench dataset with matminer (needs the internet) and return it as
    ``formula, target`` (composition formula of each structure; the lowest target per formula,
    as in the composition-only shared data)."""
    from matminer.datasets import load_dataset

    data = load_dataset(name)
    target = next(c for c in data.columns if c not in ("structure", "composition"))
    source = data["composition"] if "composition" in data.columns else data["structure"].map(lambda s: s.composition)
    formulas = source.map(lambda c: c.formula.replace(" ", ""))
    frame = pd.DataFrame({"formula": formulas, "target": data[target].astype(float)})
    return frame.sort_values("target").drop_duplicates("formula").sort_index().reset_index(drop=True)
