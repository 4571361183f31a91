"""Candidate compositions: every chemical system of 2..k elements over a list of elements, and
for each every reduced composition on a stoichiometry grid, streamed in chunks.

The grid is the set of integer amount vectors with every amount in ``1..max_amount`` and at
most ``max_atoms`` atoms per formula unit, reduced (greatest common divisor 1), so each
composition appears once. It depends only on the number of elements, so a system's candidates
are one template with the system's elements, the space can be counted without enumerating it,
and candidate ``i`` of system ``s`` has a stable id (``offset(s) + i``) whatever the chunking.
ElemNet's screening grid (at most 10 atoms) gives 31 / 109 / 205 compositions per binary /
ternary / quaternary system.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from math import comb

import numpy as np

from screening.composition import CompositionBatch
from screening.element_tables import pymatgen_ion_data
from screening.elements import SYMBOLS, Z_OF, chemsys_name

MAX_ARITY = 5
MAX_CANDIDATES = 10**10  # larger spaces are refused as a probable mistake


@dataclass(frozen=True)
class Grid:
    max_atoms: int | None = 10
    max_amount: int | None = None

    def __post_init__(self):
        if self.max_atoms is None and self.max_amount is None:
            raise ValueError("a stoichiometry grid needs max_atoms, max_amount or both")
        for name in ("max_atoms", "max_amount"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive, got {value}")


MAX_TEMPLATE = 5_000_000  # compositions per chemical system; more is not a sensible grid


def _top(arity: int, grid: Grid) -> int:
    top = grid.max_amount if grid.max_amount is not None else grid.max_atoms - (arity - 1)
    if grid.max_atoms is not None:
        top = min(top, grid.max_atoms - (arity - 1))
    return top


def _count_vectors(arity: int, top: int, max_sum: int | None) -> int:
    """Integer vectors in ``[1, top]^arity`` with sum at most ``max_sum``, in closed form
    (inclusion-exclusion over the amounts that exceed ``top``; constant time in ``max_sum``)."""
    if top < 1:
        return 0
    if max_sum is None:
        return top**arity
    slack = max_sum - arity  # amounts minus 1 sum to at most this
    if slack < 0:
        return 0
    return sum(
        (-1) ** j * comb(arity, j) * comb(slack - j * top + arity, arity)
        for j in range(arity + 1)
        if slack - j * top >= 0
    )


@lru_cache(maxsize=256)
def grid_size(arity: int, grid: Grid) -> int:
    """Number of reduced compositions of ``arity`` elements on the grid, without listing them
    (Moebius inversion over the common divisor)."""
    top = _top(arity, grid)
    total = 0
    mobius = _mobius_table(max(top, 0))
    for d in range(1, max(top, 0) + 1):
        mu = int(mobius[d])
        if mu:
            total += mu * _count_vectors(arity, top // d, None if grid.max_atoms is None else grid.max_atoms // d)
    return total


def _mobius_table(n: int) -> np.ndarray:
    """The Moebius function of 0..n (a sieve; index 0 unused)."""
    mu = np.ones(n + 1, np.int64)
    is_prime = np.ones(n + 1, bool)
    for p in range(2, n + 1):
        if is_prime[p]:
            is_prime[2 * p :: p] = False
            mu[p::p] *= -1
            mu[p * p :: p * p] = 0
    return mu


@lru_cache(maxsize=64)
def grid_template(arity: int, grid: Grid) -> np.ndarray:
    """All reduced integer amount vectors of ``arity`` elements on the grid, ``(count, arity)``
    int16, in lexicographic order; built column by column so that memory is the output's."""
    size = grid_size(arity, grid)
    if size > MAX_TEMPLATE:
        raise ValueError(
            f"the grid gives {size:,} compositions per {arity}-element system (over {MAX_TEMPLATE:,}): lower "
            "max_atoms or max_amount"
        )
    top = _top(arity, grid)
    if top < 1:
        return np.zeros((0, arity), np.int16)
    budget = grid.max_atoms if grid.max_atoms is not None else top * arity
    rows = np.arange(1, top + 1, dtype=np.int64)[:, None]
    for k in range(1, arity):
        room = budget - rows.sum(axis=1) - (arity - k - 1)  # leave 1 atom per remaining element
        n_next = np.clip(np.minimum(room, top), 0, None)
        parent = np.repeat(np.arange(len(rows)), n_next)
        value = np.arange(len(parent)) - np.repeat(np.cumsum(n_next) - n_next, n_next) + 1
        rows = np.column_stack([rows[parent], value])
    rows = rows[np.gcd.reduce(rows, axis=1) == 1]
    return rows.astype(np.int16)


def validate_elements(elements: list[str]) -> tuple[int, ...]:
    """Atomic numbers of the elements, sorted; unknown or repeated symbols are errors."""
    if not elements:
        raise ValueError("the element list is empty")
    unknown = [e for e in elements if e not in Z_OF]
    if unknown:
        raise ValueError(f"unknown element symbol(s): {', '.join(map(repr, unknown))}")
    if len(set(elements)) != len(elements):
        raise ValueError(f"repeated elements in {elements}")
    return tuple(sorted(Z_OF[e] for e in elements))


def systems_of(elements: list[str], max_arity: int, min_arity: int = 2) -> list[tuple[int, ...]]:
    """Chemical systems (sorted atomic numbers) by arity, then lexicographically."""
    zs = validate_elements(elements)
    if not 1 <= min_arity <= max_arity <= MAX_ARITY:
        raise ValueError(f"need 1 <= min arity <= max arity <= {MAX_ARITY}, got {min_arity}..{max_arity}")
    return [s for k in range(min_arity, min(max_arity, len(zs)) + 1) for s in combinations(zs, k)]


@dataclass(frozen=True)
class CandidateSpace:
    """The candidates of some chemical systems on a grid (from :func:`space`)."""

    systems: tuple[tuple[int, ...], ...]
    grid: Grid

    def counts(self) -> np.ndarray:
        return np.array([grid_size(len(s), self.grid) for s in self.systems], np.int64)

    def size(self) -> int:
        return int(self.counts().sum())

    def chunks(self, chunk_size: int = 100_000) -> Iterator[CandidateChunk]:
        """Stream the space in chunks of at most ``chunk_size`` candidates (a chunk never
        spans more memory than that, whatever the space's size)."""
        if chunk_size < 1:
            raise ValueError(f"chunk size must be positive, got {chunk_size}")
        pending: list[tuple[int, tuple[int, ...], np.ndarray]] = []
        held, next_id = 0, 0
        for system in self.systems:
            template = grid_template(len(system), self.grid)
            start = 0
            while start < len(template):
                take = min(chunk_size - held, len(template) - start)
                pending.append((next_id, system, template[start : start + take]))
                next_id += take
                start += take
                held += take
                if held == chunk_size:
                    yield CandidateChunk.build(pending)
                    pending, held = [], 0
        if pending:
            yield CandidateChunk.build(pending)


def space(
    elements: list[str] | None = None,
    max_arity: int = 3,
    grid: Grid = Grid(),
    systems: list[list[str]] | None = None,
    min_arity: int = 2,
) -> CandidateSpace:
    """A candidate space from a list of elements (all systems of ``min_arity..max_arity`` of
    them) or from explicit chemical systems (each a list of symbols)."""
    if systems is not None:
        chosen = sorted({validate_elements(list(s)) for s in systems}, key=lambda s: (len(s), s))
        if any(len(s) > MAX_ARITY for s in chosen):
            raise ValueError(f"chemical systems of more than {MAX_ARITY} elements are not supported")
    else:
        chosen = systems_of(elements or [], max_arity, min_arity)
    result = CandidateSpace(tuple(chosen), grid)
    for arity in sorted({len(s) for s in chosen}):
        if grid_size(arity, grid) > MAX_TEMPLATE:
            raise ValueError(
                f"the grid gives {grid_size(arity, grid):,} compositions per {arity}-element system "
                f"(over {MAX_TEMPLATE:,}): lower max_atoms or max_amount"
            )
    if result.size() > MAX_CANDIDATES:
        raise ValueError(f"the space holds {result.size():,} candidates (over {MAX_CANDIDATES:,}): narrow it")
    return result


@dataclass(frozen=True)
class CandidateChunk:
    candidate_id: np.ndarray  # int64, stable across chunkings
    chemsys: np.ndarray  # object: "Fe-Li-O" (alphabetical, as pymatgen writes it)
    batch: CompositionBatch

    def __len__(self) -> int:
        return len(self.candidate_id)

    @classmethod
    def build(cls, pieces: list[tuple[int, tuple[int, ...], np.ndarray]]) -> CandidateChunk:
        n = sum(len(t) for _, _, t in pieces)
        width = max(len(s) for _, s, _ in pieces)
        z = np.zeros((n, width), np.int16)
        amount = np.zeros((n, width))
        ids = np.empty(n, np.int64)
        chemsys = np.empty(n, object)
        formulas = np.empty(n, object)
        row = 0
        for first_id, system, template in pieces:
            rows = slice(row, row + len(template))
            z[rows, : len(system)] = system
            amount[rows, : len(system)] = template
            ids[rows] = np.arange(first_id, first_id + len(template))
            chemsys[rows] = chemsys_name(system)
            formulas[rows] = formula_strings(system, template)
            row += len(template)
        return cls(ids, chemsys, CompositionBatch(np.arange(n), formulas, z, amount))


def formula_strings(system: tuple[int, ...], amounts: np.ndarray) -> list[str]:
    """``Li2MnO3``-style formulas (amount 1 omitted), elements by increasing electronegativity
    as pymatgen writes them."""
    chi = pymatgen_ion_data()[0]
    order = sorted(range(len(system)), key=lambda j: (chi[system[j]], system[j]))
    symbols = [SYMBOLS[system[j] - 1] for j in order]
    columns = [[s if a == 1 else f"{s}{a}" for a in amounts[:, j].tolist()] for s, j in zip(symbols, order)]
    return ["".join(parts) for parts in zip(*columns)]


def count(elements: list[str], max_arity: int, grid: Grid = Grid()) -> int:
    """Number of candidates, computed without enumerating them."""
    zs = validate_elements(elements)
    return sum(comb(len(zs), k) * grid_size(k, grid) for k in range(2, min(max_arity, len(zs)) + 1))


def reduced_formulas(batch: CompositionBatch) -> list[str]:
    """Reduced formulas of any compositions, written like the candidates' (``Li8O4`` ->
    ``Li2O``, ``Na1O2`` -> ``NaO2``); non-integer amounts are kept, to 4 significant digits."""
    from math import gcd

    chi = pymatgen_ion_data()[0]
    out = []
    for zs, amounts in zip(batch.z.tolist(), batch.amount.tolist()):
        pairs = [(z, a) for z, a in zip(zs, amounts) if z]
        if all(abs(a - round(a)) < 1e-8 for _, a in pairs):
            common = 0
            for _, a in pairs:
                common = gcd(common, int(round(a)))
            pairs = [(z, round(a) // max(common, 1)) for z, a in pairs]
        pairs.sort(key=lambda p: (chi[p[0]], p[0]))
        out.append(
            "".join(
                SYMBOLS[z - 1] + ("" if a == 1 else f"{a:.4g}" if isinstance(a, float) else str(a)) for z, a in pairs
            )
        )
    return out
