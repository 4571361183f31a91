"""Per-element property tables, indexed by atomic number, read from the installed data of
matminer (Magpie tables) and pymatgen (electronegativity, common oxidation states) through
matminer's own data classes, so that imputation of missing values is exactly matminer's.

Row 0 of every table is padding (atomic number 0) and holds zeros.

Importing matminer's data module (and with it pymatgen and scipy.stats) takes ~0.4 s of every
process that needs a table: a screen's planner and each of its Dask workers, all at once while
Prefect's server starts. So the tables are kept on disk (:func:`kept_on_disk`), keyed by the
installed matminer and pymatgen versions, in ``$SCREENING_CACHE_DIR`` (default
``~/.cache/screening``); where that cannot be written, they are built in every process.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
import zipfile
from functools import cache, wraps
from pathlib import Path

import numpy as np

from screening.elements import MAX_Z, SYMBOLS

TABLE_FORMAT = 1  # bump when a table's construction changes


def kept_on_disk(build):
    """``build(*args)`` (an array or a tuple of arrays) computed once per process and, across
    processes, read back from the cache folder when the same table of the same matminer and
    pymatgen versions is there. A missing, unreadable or corrupt file is rebuilt."""

    @cache
    @wraps(build)
    def kept(*args):
        path = _cache_folder() / f"{build.__name__}-{_stamp(build.__name__, args)}.npz"
        try:
            with np.load(path) as stored:
                if "array" in stored.files:
                    return stored["array"]
                return tuple(stored[f"item{i}"] for i in range(len(stored.files)))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # absent, corrupt or truncated: rebuilt
            pass
        result = build(*args)
        items = {f"item{i}": a for i, a in enumerate(result)} if isinstance(result, tuple) else {"array": result}
        _store(path, items)
        return result

    return kept


def _cache_folder() -> Path:
    return Path(os.environ.get("SCREENING_CACHE_DIR") or Path.home() / ".cache" / "screening")


def _stamp(name: str, args: tuple) -> str:
    from importlib.metadata import version

    text = f"{name}{args!r} matminer {version('matminer')} pymatgen {version('pymatgen')} format {TABLE_FORMAT}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _store(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Written whole or not at all (a temporary file renamed); a folder that cannot be written
    only means that the next process builds the table again."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz", delete=False) as f:
            np.savez(f, **arrays)
        os.replace(f.name, path)
    except OSError:
        pass


@kept_on_disk
def magpie_table(properties: tuple[str, ...]) -> np.ndarray:
    """``(MAX_Z + 1, len(properties))`` float64 table of matminer's ``MagpieData``
    (``impute_nan=True``, as in ``ElementProperty.from_preset("magpie")``)."""
    from matminer.utils.data import MagpieData

    source = MagpieData(impute_nan=True)
    table = np.zeros((MAX_Z + 1, len(properties)))
    for j, prop in enumerate(properties):
        if prop not in source.all_elemental_props:
            raise KeyError(f"matminer's Magpie data has no property {prop!r}")
        values = source.all_elemental_props[prop]
        table[1:, j] = [float(values[s]) for s in SYMBOLS]
    return table


@kept_on_disk
def pymatgen_ion_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Electronegativity ``X`` and common oxidation states as matminer's ``IonProperty`` sees
    them (``PymatgenData(impute_nan=True)``).

    Returns ``(electronegativity[MAX_Z+1], oxidation_states[MAX_Z+1, K], n_states[MAX_Z+1])``,
    oxidation states left-aligned and zero-padded.
    """
    from matminer.utils.data import PymatgenData
    from pymatgen.core.periodic_table import Element

    source = PymatgenData(impute_nan=True)
    electronegativity = np.zeros(MAX_Z + 1)
    states: list[tuple[int, ...]] = [()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for z in range(1, MAX_Z + 1):
            element = Element.from_Z(z)
            electronegativity[z] = float(source.get_elemental_property(element, "X"))
            states.append(tuple(source.get_oxidation_states(element)))
    width = max(len(s) for s in states)
    oxidation = np.zeros((MAX_Z + 1, width))
    for z, s in enumerate(states):
        oxidation[z, : len(s)] = s
    n_states = np.array([len(s) for s in states], np.int64)
    return electronegativity, oxidation, n_states


@kept_on_disk
def metal_flags() -> np.ndarray:
    """``is_metal`` of pymatgen's ``Element`` by atomic number (False at 0)."""
    from pymatgen.core.periodic_table import Element

    flags = np.zeros(MAX_Z + 1, bool)
    flags[1:] = [Element.from_Z(z).is_metal for z in range(1, MAX_Z + 1)]
    return flags
