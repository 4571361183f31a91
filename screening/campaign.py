"""Campaigns: many chemical spaces screened once per model and reference data, over as many
runs as it takes, into one catalog that analysts query.

A campaign is a YAML file (checked by :func:`load_campaign`, errors name the file and the key)::

    name: oxides
    model: data/models/default           # a model folder; or an alias of `registry` (e.g. production)
    registry: runs/registry              # optional: a model registry (screening.registry)
    reference: ["{data}/mp_e_form/train.csv", "{data}/mp_e_form/val.csv"]
    root: runs/campaigns/oxides          # work folders, the catalog, run records
    budget: {candidates: 2000000}        # per run; or {minutes: 60}; or both
    chunk_size: 50000
    spaces:
      - {name: li-tm-oxides, elements: [Li, Mn, Fe, Co, Ni, O], max_arity: 4, max_atoms: 10}
      - {name: titanates, systems: [[Ba, Ti, O], [Sr, Ti, O]]}

Work is keyed by (space, model hash, reference hash): ``root/work/<space>/<model>-<reference>/``
is an ordinary resumable screen, so nothing is screened twice, a killed run loses at most the
chunks it was writing, and two overlapping runs cannot write the same part (the screen's folder
lock refuses the second). A run screens the unfinished spaces in file order until its budget is
spent and stops cleanly; the next run continues. A finished space is published to the catalog,
``root/catalog/model=<model>/space=<name>/part-0.parquet`` (its ranked candidates with provenance
columns), and ``root/catalog.duckdb`` holds the view ``candidates`` over every published space.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

from screening import run_lock
from screening.catalog import publish, snapshot, split_key, write_feedback
from screening.datasets import data_path, sha256_of
from screening.enumerate import Grid, space
from screening.registry import Registry, model_key
from screening.request import ScreenRequest
from screening.scoring import chunk_meta
from screening.screen import finish, run_cluster, score
from screening.screen_plan import plan

SPACE_KEYS = {"name", "elements", "systems", "min_arity", "max_arity", "max_atoms", "max_amount", "charge_neutral"}
CAMPAIGN_KEYS = {"name", "model", "registry", "reference", "feedback", "root", "budget", "chunk_size", "bf16", "spaces"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SNAPSHOT_TOP = 100  # each run records the catalog's best this many, for `catalog diff`


@dataclass(frozen=True)
class Space:
    name: str
    elements: tuple[str, ...] | None = None
    systems: tuple[tuple[str, ...], ...] | None = None
    max_arity: int = 3
    max_atoms: int | None = 10
    max_amount: int | None = None
    charge_neutral: bool = False
    min_arity: int = 2

    def request(self, campaign: Campaign, out: Path, model: Path | None = None) -> ScreenRequest:
        return ScreenRequest(
            model=str(model or campaign.model),
            out=str(out),
            elements=list(self.elements) if self.elements else None,
            systems=[list(s) for s in self.systems] if self.systems else None,
            max_arity=self.max_arity,
            min_arity=self.min_arity,
            max_atoms=self.max_atoms,
            max_amount=self.max_amount,
            charge_neutral=self.charge_neutral,
            reference=campaign.references(),
            chunk_size=campaign.chunk_size,
            bf16=campaign.bf16,
        )

    def size(self) -> int:
        systems = [list(s) for s in self.systems] if self.systems else None
        grid = Grid(self.max_atoms, self.max_amount)
        return space(list(self.elements or []), self.max_arity, grid, systems, self.min_arity).size()


@dataclass(frozen=True)
class Campaign:
    name: str
    model: str
    reference: tuple[str, ...]
    root: Path
    spaces: tuple[Space, ...]
    budget_candidates: int | None = None
    budget_minutes: float | None = None
    chunk_size: int = 100_000
    feedback: Path | None = None  # a folder of new DFT results (formula,target CSVs, one per source)
    registry: Path | None = None  # then ``model`` is an alias (or key) of this model registry
    bf16: bool = False  # bfloat16 matmuls: faster on CPUs with bf16 units, ~1e-3 eV/atom apart (its own work)

    def model_folder(self) -> Path:
        """The model to screen with now: the folder, or what the registry's alias points at (resolved
        once per run, so that a promotion during a run takes effect at the next one)."""
        return Registry(self.registry).resolve(self.model) if self.registry else Path(self.model)

    def feedback_files(self) -> list[Path]:
        return sorted(self.feedback.glob("*.csv")) if self.feedback and self.feedback.is_dir() else []

    def references(self) -> list[str]:
        """The known compounds of the next screens: the reference tables and every feedback file."""
        return list(self.reference) + [str(p) for p in self.feedback_files()]

    def key(self, model: Path | None = None) -> str:
        """``<model>-<reference>``: the weights and stability model (:func:`model_key`; a registered
        model's folder is named by it), and the reference tables (feedback files included: a new
        DFT result changes the known hull, so it is new work)."""
        model = model or self.model_folder()
        registered = self.registry is not None and model.parent == Path(self.registry) / "models"
        reference = hashlib.sha256("".join(sha256_of(p) for p in self.references()).encode()).hexdigest()[:12]
        return f"{model.name if registered else model_key(model)}-{reference}" + ("-bf16" if self.bf16 else "")

    def work_folder(self, space: Space, key: str) -> Path:
        return self.root / "work" / space.name / key

    def catalog_part(self, space: Space, key: str) -> Path:
        """Where a space's candidates go in the catalog: one partition per model and space (new
        reference data replaces a space's candidates for that model)."""
        return self.root / "catalog" / f"model={split_key(key)[0]}" / f"space={space.name}" / "part-0.parquet"

    def published(self, space: Space, key: str) -> bool:
        """Whether the catalog holds this space for this model *and* these reference data."""
        marker = self.catalog_part(space, key).with_name("_key")
        return marker.exists() and marker.read_text() == key


def load_campaign(path: str | Path) -> Campaign:
    """Read and check a campaign file; every problem is one ``ValueError`` naming the file and key."""
    where = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{where}: cannot read the campaign file: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: a campaign is a mapping with keys {', '.join(sorted(CAMPAIGN_KEYS))}")
    _known_keys(raw, CAMPAIGN_KEYS, where)
    for key in ("name", "model", "root", "spaces"):
        if key not in raw:
            raise ValueError(f"{where}: missing '{key}'")
    budget = raw.get("budget") or {}
    _known_keys(budget, {"candidates", "minutes"}, f"{where}: budget")
    reference = raw.get("reference") or []
    if not isinstance(reference, list) or not all(isinstance(r, str) for r in reference):
        raise ValueError(f"{where}: 'reference' is a list of formula,target tables")
    spaces = raw["spaces"]
    if not isinstance(spaces, list) or not spaces:
        raise ValueError(f"{where}: 'spaces' is a non-empty list of chemical spaces")
    campaign = Campaign(
        name=_name(raw["name"], f"{where}: name"),
        model=str(raw["model"]),
        reference=tuple(data_path(r) for r in reference),
        root=Path(data_path(str(raw["root"]))),
        spaces=tuple(_space(s, f"{where}: spaces[{i}]") for i, s in enumerate(spaces)),
        budget_candidates=_positive(budget.get("candidates"), int, f"{where}: budget.candidates"),
        budget_minutes=_positive(budget.get("minutes"), float, f"{where}: budget.minutes"),
        chunk_size=_positive(raw.get("chunk_size", 100_000), int, f"{where}: chunk_size"),
        feedback=Path(data_path(str(raw["feedback"]))) if raw.get("feedback") else None,
        registry=Path(data_path(str(raw["registry"]))) if raw.get("registry") else None,
        bf16=_flag(raw.get("bf16", False), f"{where}: bf16"),
    )
    names = [s.name for s in campaign.spaces]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: space names repeat: {sorted({n for n in names if names.count(n) > 1})}")
    for s in campaign.spaces:
        try:
            s.request(campaign, campaign.root)  # the request's own checks
            s.size()  # element symbols, grid sizes
        except (ValueError, KeyError) as err:
            raise ValueError(f"{where}: space '{s.name}': {err}") from None
    return campaign


def _known_keys(raw, allowed: set[str], where: str) -> None:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping, got {raw!r}")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}"
        )


def _name(value, where: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise ValueError(f"{where}: {value!r} is not a name (letters, digits, '.', '_' or '-')")
    return value


def _flag(value, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: {value!r} is not true or false")
    return value


def _positive(value, kind, where: str):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 or kind(value) != value:
        raise ValueError(f"{where}: {value!r} is not a positive {kind.__name__}")
    return kind(value)


def _space(raw, where: str) -> Space:
    _known_keys(raw, SPACE_KEYS, where)
    if "name" not in raw:
        raise ValueError(f"{where}: missing 'name'")
    elements, systems = raw.get("elements"), raw.get("systems")
    if elements is not None and not (isinstance(elements, list) and all(isinstance(e, str) for e in elements)):
        raise ValueError(f"{where}: 'elements' is a list of element symbols")
    if systems is not None and not (
        isinstance(systems, list) and all(isinstance(s, list) and all(isinstance(e, str) for e in s) for s in systems)
    ):
        raise ValueError(f"{where}: 'systems' is a list of lists of element symbols")
    for key in ("min_arity", "max_arity", "max_atoms", "max_amount"):
        if raw.get(key) is not None and (isinstance(raw[key], bool) or not isinstance(raw[key], int)):
            raise ValueError(f"{where}: '{key}' is an integer, got {raw[key]!r}")
    if not isinstance(raw.get("charge_neutral", False), bool):
        raise ValueError(f"{where}: 'charge_neutral' is true or false")
    return Space(
        name=_name(raw["name"], f"{where}: name"),
        elements=tuple(elements) if elements else None,
        systems=tuple(tuple(s) for s in systems) if systems else None,
        max_arity=raw.get("max_arity", 3),
        min_arity=raw.get("min_arity", 2),
        max_atoms=raw.get("max_atoms", 10),
        max_amount=raw.get("max_amount"),
        charge_neutral=raw.get("charge_neutral", False),
    )


def plan_campaign(campaign: Campaign) -> list[dict]:
    """Per space, for the current model and reference data: candidates in all, done (on disk),
    left, and whether the space is published to the catalog."""
    key = campaign.key()
    rows = []
    for s in campaign.spaces:
        folder = campaign.work_folder(s, key)
        total = s.size()
        parts = sorted((folder / "scored").glob("part-*.parquet")) if (folder / "scored").exists() else []
        done = sum(chunk_meta(folder, int(p.stem.split("-")[1]))["candidates"] for p in parts)
        published = campaign.published(s, key)
        rows.append({"space": s.name, "candidates": total, "done": done, "left": total - done, "published": published})
    return rows


def run_campaign(
    campaign: Campaign,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = False,
    log=print,
) -> dict:
    """Screen what the current model and reference data have not screened yet, in file order,
    until the run's budget is spent; publish each finished space to the catalog; record the run
    (``root/runs/<run>.json``: what was done, and the catalog's best candidates for ``diff``)."""
    # named by its start to the microsecond: runs sort by name in order (diff compares the last two),
    # also runs that start within the same second
    started, run_id = time.monotonic(), dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ-") + uuid.uuid4().hex[:6]
    deadline = started + 60 * campaign.budget_minutes if campaign.budget_minutes else None
    left = campaign.budget_candidates
    model = campaign.model_folder()
    key = campaign.key(model)
    record = {"run": run_id, "campaign": campaign.name, "model": str(model), "key": key, "spaces": []}
    write_feedback(campaign)  # the catalog marks candidates computed since, before anything is re-screened
    stopped = "done"
    todo = [s for s in campaign.spaces if not campaign.published(s, key)]
    requests = [s.request(campaign, campaign.work_folder(s, key), model) for s in todo]
    with run_cluster(requests, scheduler, workers) as place:  # one for all spaces, started while planning
        for s, request in zip(todo, requests, strict=True):
            if (left is not None and left <= 0) or (deadline is not None and time.monotonic() >= deadline):
                stopped = "budget"
                break
            prepared = plan(request)
            try:
                counts = score(prepared, place.address, workers, progress, budget=left, deadline=deadline)
                if left is not None:
                    left -= counts["candidates_started"]
                entry = {
                    "space": s.name,
                    "candidates_scored": counts["candidates_started"],
                    "complete": counts["complete"],
                }
                if not counts["complete"]:
                    stopped = "budget"
                else:
                    summary = finish(prepared, counts, time.monotonic() - started, scheduler)
                    publish(campaign, s, key, Path(summary["outputs"]["ranked"]), run_id)
                    entry |= {
                        "expected_stable": summary.get("expected_stable"),
                        "expected_stable_with_p_system": summary.get("expected_stable_with_p_system"),
                        "published": True,
                    }
                record["spaces"].append(entry)
                log(
                    f"{s.name}: {entry['candidates_scored']:,} candidates scored"
                    + (", published" if counts["complete"] else ", to be continued")
                )
            finally:
                run_lock.release(prepared.out)
    record |= {
        "stopped": stopped,
        "seconds": round(time.monotonic() - started, 1),
        "top": snapshot(campaign.root, SNAPSHOT_TOP),
    }
    runs = campaign.root / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"{run_id}.json").write_text(json.dumps(record, indent=2, default=str))
    return record
