"""Run the ``screening`` command line where matminer and pymatgen are not installed: the element
tables come from ``tables.npz`` beside this file (written by ``export_tables.py`` through the
same functions). ``python3 bench/device/gpu_cli.py train ...`` takes what ``screening`` takes."""

import sys
from pathlib import Path

import numpy as np

import screening.element_tables as element_data
import screening.featurizers.element_embedding as element_embedding

_tables = np.load(Path(__file__).with_name("tables.npz"))
_MAGPIE_PROPERTIES = tuple(str(p) for p in _tables["props"])


def magpie_table(properties: tuple[str, ...]) -> np.ndarray:
    missing = [p for p in properties if p not in _MAGPIE_PROPERTIES]
    if missing:
        raise KeyError(f"tables.npz lacks the Magpie properties {missing} (see export_tables.py)")
    return _tables["magpie"][:, [_MAGPIE_PROPERTIES.index(p) for p in properties]]


def pymatgen_ion_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _tables["x"], _tables["ox"], _tables["n"]


def metal_flags() -> np.ndarray:
    return _tables["metal"]


def embedding_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name != "mat2vec200":
        raise KeyError(f"tables.npz holds the mat2vec200 embedding only, not {name!r}")
    return _tables["m2v"], _tables["m2v_known"]


_REPLACEMENTS = {
    "magpie_table": magpie_table,
    "pymatgen_ion_data": pymatgen_ion_data,
    "metal_flags": metal_flags,
    "embedding_table": embedding_table,
}
for _module in [element_data, element_embedding] + [
    m for n, m in list(sys.modules.items()) if n.startswith("screening")
]:
    for _name, _function in _REPLACEMENTS.items():  # also in modules that imported them by name
        if hasattr(_module, _name):
            setattr(_module, _name, _function)

if __name__ == "__main__":
    from screening.cli import main

    sys.exit(main(sys.argv[1:]))
