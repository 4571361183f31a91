"""P(stable): the probability that a screened candidate is a stable compound, learned where
screening happens (every composition of a chemical system, about 1 in 100 stable).

Two stages, each a gradient-boosted classifier:

1. **Evidence** (:mod:`screening.evidence`, no energies): trained on *rediscovery
   situations* made from the known compounds alone: a random tenth of them is hidden, every
   composition of the hidden stable compounds' systems is enumerated, and the classifier learns
   which of those are the hidden stable ones, from what the remaining known compounds say.
   Repeated over several random tenths, this gives many thousand positives without any energy
   model.
2. **Stacker**: the evidence score beside the ensemble's energy against the known hull, its
   members' spread, the energy against the hull of known and predicted compounds, and each
   candidate's standing in its own system (gap to the system's best), fitted on the enumerated
   grids of compounds the energy model did not train on (its train-only twin's predictions), so
   that energies are as uncertain as they will be when screening. Its probability is then
   mapped by isotonic regression fitted on cross-fitted predictions (systems never scored by a
   model that saw them), so that it is a frequency on the grid.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from screening.columns import Col
from screening.evidence import FEATURES as EVIDENCE_FEATURES
from screening.hull import STABLE_TOL
from screening.tree_predict import positive_probability, rounding_splits

FORMAT = "screening-stability/1"
EPS = 1e-6
# Stacker inputs, computed from a scored table by :func:`stacker_inputs`.
STACK_FEATURES: tuple[str, ...] = (
    "evidence_logit",
    "evidence_gap_to_system_best",
    "e_above_known_hull",
    "e_above_known_gap_to_system_best",
    "e_above_combined_hull",
    "spread",
    "z_known",
    "e_form_pred",
    "known_hull_energy",
    "n_elements",
    "log_system_known",
    "log_sub_hull_compounds",
    "system_share_below_known",
)
GBM = dict(
    max_iter=300, learning_rate=0.05, max_leaf_nodes=31, min_samples_leaf=40, l2_regularization=1.0, random_state=0
)
STACK_GBM = dict(
    max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=40, l2_regularization=1.0, random_state=0
)


class StabilityModelError(ValueError):
    """A stability model that cannot be used (missing, corrupt, or of another format)."""


def new_classifier(**settings):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**settings)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def on_hull_as_zero(distance: np.ndarray) -> np.ndarray:
    """Distances to a hull within :data:`screening.hull.STABLE_TOL` of 0 as exactly 0, as the
    classifiers see them. A candidate on a hull is at 0 up to rounding (+-1e-15), whose size and
    sign depend on how the hull was computed (qhull or the simplex method, which facets, the
    CPU's arithmetic); a split the trees learned inside that noise would move ``p_stable`` of
    the very candidates on the combined hull (up to 0.07, measured) with no change in the
    science."""
    return np.where(np.abs(distance) <= STABLE_TOL, 0.0, distance)


def _on_hull_as_zero(column: str) -> str:
    """:func:`on_hull_as_zero` in SQL."""
    return f"(CASE WHEN abs({column}) <= {STABLE_TOL!r} THEN 0.0 ELSE {column} END)"


SYSTEM_STATS = ("best_evidence_logit", "best_e_above_known_hull", "share_below_known_hull")


_STATS = f"""max({Col.evidence_logit}) AS best_evidence_logit,
    min({_on_hull_as_zero(Col.e_above_known_hull)}) AS best_e_above_known_hull,
    avg(CASE WHEN {_on_hull_as_zero(Col.e_above_known_hull)} < 0 THEN 1.0 ELSE 0.0 END) AS share_below_known_hull"""


def system_stats(candidates: pd.DataFrame | str | Path | list) -> pd.DataFrame:
    """Per chemical system (index ``chemsys``): the best evidence, the lowest energy above the
    known hull, and the share of candidates below it (every candidate of a system needed): of a
    frame when fitting, of scored Parquet parts when screening (see :func:`per_system`)."""
    return per_system(candidates, _STATS)


def per_system(candidates: pd.DataFrame | str | Path | list, aggregates: str) -> pd.DataFrame:
    """``aggregates`` (SQL) per chemical system (index ``chemsys``, sorted) of scored candidates:
    a frame, or Parquet files (a path or a list of them, aggregated out of core). One query
    serves fitting and screening, so a classifier sees the columns it was fitted on."""
    import duckdb

    con = duckdb.connect()
    try:
        if isinstance(candidates, pd.DataFrame):
            con.register("candidates", candidates)
            source, parameters = "candidates", []
        else:
            paths = candidates if isinstance(candidates, list) else [candidates]
            source, parameters = "read_parquet(?)", [[str(p) for p in paths]]
        query = f"SELECT {Col.chemsys}, {aggregates} FROM {source} GROUP BY {Col.chemsys} ORDER BY {Col.chemsys}"
        return con.execute(query, parameters).df().set_index(Col.chemsys)
    finally:
        con.close()


def stacker_inputs(frame: pd.DataFrame, systems: pd.DataFrame) -> np.ndarray:
    """Stacker features of scored candidates: ``frame`` holds the scored columns (with
    ``evidence_logit``, ``log_system_known``, ``log_sub_hull_compounds`` and
    ``e_above_combined_hull``), ``systems`` the :func:`system_stats` of their systems (over
    all their candidates). The spread is the members' raw one (``e_form_std``): a model card's
    calibration of it would change ``z_known`` between the twin the stacker was fitted with and
    the model it is used with."""
    stats = systems.reindex(frame[Col.chemsys].to_numpy())
    if stats.isna().any().any():
        raise ValueError("system statistics are missing for some candidates' systems")

    def col(name: str) -> np.ndarray:
        return frame[name].to_numpy(np.float64)

    e, ev = on_hull_as_zero(col(Col.e_above_known_hull)), col(Col.evidence_logit)
    sigma = col(Col.e_form_std)
    columns = {
        Col.evidence_logit: ev,
        "evidence_gap_to_system_best": stats["best_evidence_logit"].to_numpy() - ev,
        Col.e_above_known_hull: e,
        "e_above_known_gap_to_system_best": e - stats["best_e_above_known_hull"].to_numpy(),
        Col.e_above_combined_hull: on_hull_as_zero(col(Col.e_above_combined_hull)),
        "spread": sigma,
        "z_known": e / np.maximum(sigma, 1e-3),
        Col.e_form_pred: col(Col.e_form_pred),
        Col.known_hull_energy: col(Col.known_hull_energy),
        Col.n_elements: col(Col.n_elements),
        Col.log_system_known: col(Col.log_system_known),
        Col.log_sub_hull_compounds: col(Col.log_sub_hull_compounds),
        "system_share_below_known": stats["share_below_known_hull"].to_numpy(),
    }
    return np.column_stack([columns[name] for name in STACK_FEATURES])


# Per chemical system: does it hide a stable compound? (a screen's systems, from its ranked candidates)
SYSTEM_FEATURES = (
    "best_evidence_logit",
    "best_e_above_known_hull",
    "share_below_known_hull",
    "n_elements",
    "log_system_known",
    "log_sub_hull_compounds",
    "best_e_above_combined",
    "p_stable_sum",
    "p_stable_max",
    "candidates",
)


def system_table(candidates: pd.DataFrame | str | Path) -> pd.DataFrame:
    """:data:`SYSTEM_FEATURES` per chemical system (index ``chemsys``, sorted) of scored candidates
    with their ``p_stable`` (every candidate of a system needed): a frame when fitting, the path of
    a ``ranked.parquet`` when screening."""
    aggregates = f"""{_STATS}, any_value({Col.n_elements}) AS n_elements,
        max({Col.log_system_known}) AS log_system_known, max({Col.log_sub_hull_compounds}) AS log_sub_hull_compounds,
        min({_on_hull_as_zero(Col.e_above_combined_hull)}) AS best_e_above_combined,
        sum({Col.p_stable}) AS p_stable_sum, max({Col.p_stable}) AS p_stable_max, count(*) AS candidates"""
    return per_system(candidates, aggregates)[list(SYSTEM_FEATURES)]


@dataclass
class StabilityModel:
    """Both stages and the isotonic map, with a record of how they were fitted; optionally a
    system-level classifier (does a system hide a stable compound?) with its own map."""

    evidence: object  # classifier on EVIDENCE_FEATURES
    stacker: object  # classifier on STACK_FEATURES
    calibration: tuple[np.ndarray, np.ndarray]  # isotonic map: stacker probability -> frequency (x, y knots)
    record: dict = field(default_factory=dict)
    system: object | None = None  # classifier on SYSTEM_FEATURES
    system_calibration: tuple[np.ndarray, np.ndarray] | None = None

    def system_probability(self, table: pd.DataFrame) -> np.ndarray:
        """Per row of a :func:`system_table`: the probability that the system hides a stable compound."""
        if self.system is None:
            raise StabilityModelError("this stability model has no system-level classifier")
        raw = positive_probability(self.system, table[list(SYSTEM_FEATURES)].to_numpy(np.float64))
        return np.interp(raw, *self.system_calibration)

    def evidence_probability(self, evidence_features: np.ndarray) -> np.ndarray:
        return positive_probability(self.evidence, evidence_features)

    def probability(self, stack_features: np.ndarray) -> np.ndarray:
        raw = positive_probability(self.stacker, stack_features)
        return np.interp(raw, *self.calibration)

    def rounding_splits(self) -> dict[str, list[str]]:
        """Per classifier, the features it splits inside rounding noise on
        (:func:`screening.tree_predict.rounding_splits`; empty lists for a sound model)."""
        classifiers = {"evidence": (self.evidence, EVIDENCE_FEATURES), "stacker": (self.stacker, STACK_FEATURES)}
        if self.system is not None:
            classifiers["system"] = (self.system, SYSTEM_FEATURES)
        return {name: rounding_splits(c, names) for name, (c, names) in classifiers.items()}

    def save(self, directory: str | Path) -> Path:
        """``stability.pkl`` (both classifiers and the map) and ``stability.json`` (the record,
        with the pickle's sha256, checked on load)."""
        import sklearn

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        blob = pickle.dumps(
            {
                "format": FORMAT,
                "evidence": self.evidence,
                "stacker": self.stacker,
                "calibration": [a.tolist() for a in self.calibration],
            }
            | (
                {"system": self.system, "system_calibration": [a.tolist() for a in self.system_calibration]}
                if self.system is not None
                else {}
            )
        )
        (directory / "stability.pkl").write_bytes(blob)
        record = self.record | {
            "format": FORMAT,
            "sha256": hashlib.sha256(blob).hexdigest(),
            "sklearn": sklearn.__version__,
            "evidence_features": list(EVIDENCE_FEATURES),
            "stack_features": list(STACK_FEATURES),
            "rounding_splits": self.rounding_splits(),
        }
        if any(record["rounding_splits"].values()):
            logging.getLogger(__name__).warning(
                "the stability model splits inside rounding noise on %s: its probabilities there depend on how "
                "those features were computed (see screening.tree_predict.rounding_splits)",
                record["rounding_splits"],
            )
        (directory / "stability.json").write_text(json.dumps(record, indent=2, default=float))
        self.record = record
        return directory / "stability.pkl"

    @classmethod
    def load(cls, directory: str | Path) -> StabilityModel:
        directory = Path(directory)
        blob_path, record_path = directory / "stability.pkl", directory / "stability.json"
        if not blob_path.exists() or not record_path.exists():
            raise StabilityModelError(f"{directory} holds no stability model (stability.pkl and stability.json)")
        try:
            record = json.loads(record_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise StabilityModelError(f"{record_path} is not valid JSON: {err}") from None
        blob = blob_path.read_bytes()
        if hashlib.sha256(blob).hexdigest() != record.get("sha256"):
            raise StabilityModelError(
                f"{blob_path} does not match the sha256 recorded in {record_path}: the file is corrupt or was replaced"
            )
        if (
            record.get("format") != FORMAT
            or record.get("evidence_features") != list(EVIDENCE_FEATURES)
            or record.get("stack_features") != list(STACK_FEATURES)
        ):
            raise StabilityModelError(
                f"{blob_path} was made for other features or format ({record.get('format')}); refit it with this "
                "version"
            )
        parts = pickle.load(io.BytesIO(blob))  # the hash above guards against a changed file
        system_map = tuple(np.asarray(a) for a in parts["system_calibration"]) if "system" in parts else None
        knots = tuple(np.asarray(a) for a in parts["calibration"])
        return cls(parts["evidence"], parts["stacker"], knots, record, parts.get("system"), system_map)
