"""Per-element property tables, indexed by atomic number, read from the installed data of
matminer (Magpie tables) and pymatgen (electronegativity, common oxidation states) through
matminer's own data classes, so that imputation of missing values is exactly matminer's.

Row 0 of every table is padding (atomic number 0) and holds zeros.
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np

from screening.elements import MAX_Z, SYMBOLS


@cache
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


@cache
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


@cache
def metal_flags() -> np.ndarray:
    """``is_metal`` of pymatgen's ``Element`` by atomic number (False at 0)."""
    from pymatgen.core.periodic_table import Element

    flags = np.zeros(MAX_Z + 1, bool)
    flags[1:] = [Element.from_Z(z).is_metal for z in range(1, MAX_Z + 1)]
    return flags
