"""The periodic table as the project needs it: symbols by atomic number, and ElemNet's 86 elements.

Kept as plain tuples so that parsing a formula needs neither pymatgen nor matminer.
"""

from __future__ import annotations

import numpy as np

SYMBOLS: tuple[str, ...] = tuple(
    """
    H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se
    Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb
    Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm
    Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og
    """.split()
)
"""Element symbols; ``SYMBOLS[z - 1]`` is the symbol of atomic number ``z``."""

MAX_Z = len(SYMBOLS)

Z_OF: dict[str, int] = {symbol: z for z, symbol in enumerate(SYMBOLS, start=1)}

# ElemNet (Jha et al., Sci. Rep. 8, 17593, 2018) uses H..Pu without the noble gases He, Ne, Ar,
# Rn and the short-lived Po, At, Fr, Ra (Kr and Xe stay: they have known compounds).
_ELEMNET_EXCLUDED = frozenset({"He", "Ne", "Ar", "Po", "At", "Rn", "Fr", "Ra"})
ELEMNET_ELEMENTS: tuple[str, ...] = tuple(s for s in SYMBOLS[: Z_OF["Pu"]] if s not in _ELEMNET_EXCLUDED)
assert len(ELEMNET_ELEMENTS) == 86


def symbol_code_table() -> np.ndarray:
    """Lookup table from a two-byte ASCII code (``upper * 256 + lower``, ``lower = 0`` for
    one-letter symbols) to atomic number; 0 where the code is not an element."""
    table = np.zeros(256 * 256, dtype=np.int16)
    for symbol, z in Z_OF.items():
        code = ord(symbol[0]) * 256 + (ord(symbol[1]) if len(symbol) > 1 else 0)
        table[code] = z
    return table


def chemsys_name(z) -> str:
    """``Fe-Li-O``: a chemical system's symbols in alphabetical order, as pymatgen writes it
    (``z``: atomic numbers; zeros, the padding of a batch row, are skipped)."""
    return "-".join(sorted(SYMBOLS[int(e) - 1] for e in z if e))
