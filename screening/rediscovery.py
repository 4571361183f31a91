"""Rediscovery situations: the screening situation rebuilt from data whose answers are known.

Some compounds are hidden. The stable ones among them (on the hull of all compounds, DFT
energies) of a given number of elements and at most ``max_atoms`` atoms per formula unit are
the positives (the benchmark reports 3 and 4 elements; binaries are fitted too, since screens
hold them). Every grid composition of each positive's chemical system that is not already
known is a candidate; candidates other than the positives are presumed unstable. Hidden
compounds of fewer elements are given as known, as in a real screen, where the sub-systems
are charted. Used by ``bench/rediscovery.py`` (hidden = a validation table) and by the training
of the evidence stage (hidden = random tenths of the known compounds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from screening.composition import CompositionBatch
from screening.enumerate import CandidateChunk, Grid, grid_template
from screening.evidence import KnownCompounds, _atoms, _composition_key
from screening.hull import hull_distances
from screening.row_lookup import RowCounter

ARITIES = (2, 3, 4)  # the screens of the main job and most campaigns: binaries to quaternaries
MAX_ATOMS = 10


@dataclass
class Situation:
    arity: int
    known: CompositionBatch  # what the screen is given as known
    known_energy: np.ndarray
    positives: CompositionBatch  # the hidden stable compounds on the grid
    candidates: CandidateChunk  # the grid of the positives' systems, known compositions removed
    stable: np.ndarray  # bool per candidate
    n_known_table: int = (
        0  # the first rows of ``known`` are the known table; the rest, hidden compounds of fewer elements
    )
    null_systems: tuple[tuple[int, ...], ...] = ()  # systems of hidden compounds none of which is stable

    @property
    def systems(self) -> list[tuple[int, ...]]:
        return sorted(_systems(self.positives) | set(self.null_systems))


def situations(
    known: CompositionBatch,
    known_energy: np.ndarray,
    hidden: CompositionBatch,
    hidden_energy: np.ndarray,
    arities=ARITIES,
    max_atoms: int = MAX_ATOMS,
    null_systems: bool = False,
) -> list[Situation]:
    """One situation per number of elements that has positives (see the module's docstring).
    ``hidden`` must not repeat compositions of ``known``. ``null_systems``: also enumerate the
    systems of hidden compounds none of which is stable (grids without a stable compound, as a
    real screen holds many)."""
    everything = CompositionBatch.concat(known, hidden)
    stable = hull_distances(everything, np.concatenate([known_energy, hidden_energy])).stable[len(known) :]
    atoms = _atoms(hidden)
    out = []
    for k in arities:
        positive = stable & (hidden.n_elements == k) & (atoms <= max_atoms)
        fewer = hidden.n_elements < k
        given = CompositionBatch.concat(known, hidden.select(fewer))
        given_energy = np.concatenate([known_energy, hidden_energy[fewer]])
        if not positive.any():
            continue  # nothing hidden of this many elements to rediscover
        positives = hidden.select(positive)
        systems = sorted(_systems(positives))
        nulls: tuple[tuple[int, ...], ...] = ()
        if null_systems:
            of_k = hidden.n_elements == k
            every, with_stable = _systems(hidden.select(of_k)), _systems(hidden.select(of_k & stable))
            nulls = tuple(sorted(every - with_stable))
            systems = sorted(set(systems) | set(nulls))
        grid = enumerate_systems(systems, Grid(max_atoms))
        keys = _composition_key(grid.batch)
        new = RowCounter(_composition_key(given))(keys) == 0
        candidates = CandidateChunk(grid.candidate_id[new], grid.chemsys[new], grid.batch.select(new))
        labels = RowCounter(_composition_key(positives))(keys[new]) > 0
        out.append(Situation(k, given, given_energy, positives, candidates, labels, len(known), nulls))
    return out


def _systems(batch: CompositionBatch) -> set[tuple[int, ...]]:
    return {tuple(int(z) for z in zr if z) for zr in batch.z.tolist()}


def enumerate_systems(systems: list[tuple[int, ...]], grid: Grid) -> CandidateChunk:
    """Every grid composition of the given systems, in one chunk (ids as the screen numbers them)."""
    pieces, next_id = [], 0
    for system in systems:
        template = grid_template(len(system), grid)
        pieces.append((next_id, system, template))
        next_id += len(template)
    return CandidateChunk.build(pieces)


def simulated(
    batch: CompositionBatch,
    energy: np.ndarray,
    seeds=(0, 1, 2),
    hide: float = 0.1,
    arities=ARITIES,
    max_atoms: int = MAX_ATOMS,
):
    """Rediscovery situations from known compounds alone: for each seed a random ``hide`` share
    of them is hidden. Yields ``(seed, situation)``."""
    for seed in seeds:
        hidden = np.random.default_rng(seed).random(len(batch)) < hide
        for situation in situations(
            batch.select(~hidden), energy[~hidden], batch.select(hidden), energy[hidden], arities, max_atoms
        ):
            yield seed, situation


def evidence_table(situation: Situation) -> np.ndarray:
    """The evidence features of a situation's candidates, against what it gives as known."""
    return KnownCompounds(situation.known, situation.known_energy).features(situation.candidates.batch)
