"""Prefect flow ``screen-candidates``: a thin layer over :func:`screening.screen.screen`.

The library does the work (enumeration, scoring, hull, ranking) and its chunk files make the
run resumable, so a retried task redoes only what was not written. The flow adds Prefect's
parameter validation, retries, logs and artifacts.

    python -m flows.screen_candidates --elements Li,Mn,O --model data/models/default --out runs/x
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

import pandas as pd
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from screening.screen import ScreenRequest, screen


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def run_screen(request: dict) -> dict:
    return screen(ScreenRequest(**request), progress=False)


@flow(name="screen-candidates", log_prints=True)
def screen_candidates(
    model: str,
    out: str,
    elements: list[str] | None = None,
    systems: list[list[str]] | None = None,
    max_arity: int = 3,
    max_atoms: int | None = 10,
    max_amount: int | None = None,
    charge_neutral: bool = False,
    exclude_known: bool = True,
    reference: list[str] | None = None,
    chunk_size: int = 100_000,
    top_k: int = 50,
    device: str = "auto",
) -> dict:
    request = ScreenRequest(model=model, out=out, elements=elements, systems=systems, max_arity=max_arity,
                            max_atoms=max_atoms, max_amount=max_amount, charge_neutral=charge_neutral,
                            exclude_known=exclude_known, reference=reference or [], chunk_size=chunk_size,
                            top_k=top_k, device=device)  # fmt: skip
    summary = run_screen(asdict(request))
    top = pd.read_csv(summary["outputs"]["top"]).head(20)
    create_table_artifact(key="top-candidates", table=top[["rank", "formula", "chemsys", "e_form_pred", "e_form_std",
                                                          "e_above_known_hull", "p_below_known_hull"]].round(4).to_dict("records"))  # fmt: skip
    create_markdown_artifact(
        key="screening-summary",
        markdown=(
            f"### Screened {summary['candidates']:,} candidates in {summary['seconds']:.1f} s\n\n"
            f"- scored {summary['scored']:,}, rejected {summary['rejected']:,}, removed {summary['removed'] or 'none'}\n"
            f"- **{summary['below_known_hull']:,} predicted below the hull of known compounds**, "
            f"{summary['on_combined_hull']:,} on the combined hull\n"
            f"- model `{model}` (sha256 `{summary['provenance']['model_sha256'][:12]}`), featurizer "
            f"`{summary['provenance']['featurizer']}`\n"
            f"- outputs: `{summary['outputs']['ranked']}`, `{summary['outputs']['scored']}`, `{summary['outputs']['top']}`\n"
        ),
    )
    print(f"{summary['below_known_hull']:,} of {summary['scored']:,} candidates predicted below the known hull -> {out}")
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--elements", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-arity", type=int, default=3)
    parser.add_argument("--reference", action="append")
    args = parser.parse_args()
    screen_candidates(model=args.model, out=args.out, elements=args.elements.split(","), max_arity=args.max_arity,
                      reference=args.reference)  # fmt: skip
