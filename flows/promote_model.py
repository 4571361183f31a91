"""Prefect flow ``promote-model``: a thin layer over :mod:`screening.promotion`. The model is
registered as the registry's ``candidate``, judged against ``production`` on the registry's fixed
benchmark, and promoted only if it is not worse; the figures go to the registry's history and to
an artifact. A promotion emits the event ``screening.model.promoted`` (resource
``screening.registry.<registry folder name>``), on which deployments trigger: ``campaign/rescore``
re-screens its campaign with the new production model (deploy/prefect.yaml).

    python -m flows promote-model -p registry=runs/registry -p model=runs/models/weekly-2026-11-29
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from screening.promotion import PRODUCTION, promote
from screening.registry import Registry

PROMOTED = "screening.model.promoted"


def registry_resource(registry: Registry) -> dict:
    return {"prefect.resource.id": f"screening.registry.{registry.root.resolve().name}", "registry": str(registry.root)}


@task(name="promote", cache_policy=NO_CACHE)
def promote_task(registry: str, model: str, force: bool, device: str) -> dict:
    return promote(Registry(registry), model, force=force, device=device)


@flow(name="promote-model", log_prints=True)
def promote_model(registry: str, model: str, force: bool = False, device: str = "cpu") -> dict:
    """Judge ``model`` (a model folder) against the ``production`` model of ``registry`` and promote
    it if it is not worse (``force``: promote anyway, recorded as forced)."""
    store = Registry(registry)
    record = promote_task(registry, model, force, device)
    lines = [f"### {model}: {'promoted to production' if record['promoted'] else 'not promoted'}", ""]
    lines += [f"- key `{record['candidate']}`, production before: `{record['production']}`"]
    lines += [f"- {reason}" for reason in record.get("reasons", [])]
    for who, figures in record.get("figures", {}).items():
        ranking = ", ".join(
            f"{k}-element top-N {m['precision_top_n']:.3f} AUC {m['auc']:.3f}" for k, m in figures["ranking"].items()
        )
        lines.append(f"- {who}: validation MAE {figures['mae']:.4f} eV/atom ({figures['mae_source']}); {ranking}")
    create_markdown_artifact(key="model-promotion", markdown="\n".join(lines), description=str(Path(registry)))
    if record["promoted"]:
        emit_event(
            event=PROMOTED,
            resource=registry_resource(store),
            payload={"key": record["candidate"], "previous": record["production"], "alias": PRODUCTION},
        )
    print("\n".join(lines[2:]))
    return record
