"""The ``screening`` command line. Errors a user can fix are printed as one line, exit code 2."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from screening.cli_options import (
    add_options,
    add_run_options,
    check_out_file,
    from_options,
    positive_int,
    run_command,
    run_options,
    write_table,
)
from screening.featurizers import FEATURIZER_NAMES


def _featurize(args: argparse.Namespace) -> int:
    from screening.featurize_dataset import REJECTED_DIR, featurize_file

    summary = featurize_file(
        args.input, args.out, args.featurizer, args.chunk_size, **run_options(args), overwrite=args.overwrite
    )
    if args.json:
        print(summary.to_json())
        return 0
    rate = summary.rows_in / summary.seconds if summary.seconds else float("nan")
    print(
        f"featurized {summary.rows_in:,} rows with {summary.featurizer} "
        f"({summary.n_features} features) in {summary.seconds:.1f} s ({rate:,.0f} rows/s): "
        f"{summary.rows_written:,} written, {summary.rows_rejected:,} rejected; "
        f"{summary.chunks} chunks, {summary.chunks_skipped} already complete"
    )
    print(f"features: {Path(summary.out_dir) / 'features'}")
    if summary.rows_rejected:
        print(f"rejected rows and reasons: {Path(summary.out_dir) / REJECTED_DIR}")
    return 0


def _hull(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from screening.datasets import formula_targets, read_formula_table
    from screening.elements import chemsys_name
    from screening.hull import hull_distances

    check_out_file(args.out)

    batch, energy, rejected = formula_targets(read_formula_table(args.data), args.data)
    result = hull_distances(batch, energy)
    table = pd.DataFrame(
        {
            "formula": batch.formula,
            "chemsys": [chemsys_name(zs) for zs in batch.z],
            "e_form_per_atom": energy,
            "e_above_hull": np.clip(result.e_above_hull, 0.0, None),  # >= 0: rounding leaves ~-1e-15 on the hull
            "stable": result.stable,
            "decomposition": result.decomposition_strings(batch.formula),
        }
    )
    write_table(
        table,
        args.out,
        f"{len(table):,} compounds, {int(result.stable.sum()):,} on the hull",
        rejected,
        "rows rejected",
    )
    return 0


def _screen(args: argparse.Namespace) -> int:
    from screening.request import ScreenRequest
    from screening.screen import screen, weighed_by_p_system

    request = from_options(ScreenRequest, args)
    if not request.reference and not args.no_reference:
        raise ValueError(
            "no --reference: candidates would be placed against the elements alone and most called stable; "
            "give the known compounds (--reference ../shared/data/mp_e_form/train.csv), or --no-reference "
            "to screen without them"
        )
    summary = screen(request, **run_options(args))
    print(
        f"screened {summary['candidates']:,} candidates: {summary['scored']:,} scored, {summary['rejected']:,} "
        "rejected, "
        f"removed {', '.join(f'{n:,} {why}' for why, n in summary['removed'].items()) or 'none'}; "
        f"{summary['below_known_hull']:,} predicted below the known hull"
        + (
            f"; p_stable expects {summary['expected_stable']:,.1f} stable compounds{weighed_by_p_system(summary)}, "
            f"{summary['likely_stable']:,} candidates at >= 0.5"
            if summary.get("expected_stable") is not None
            else ""
        )
        + f" ({summary['seconds']:.1f} s)"
    )
    print(f"ranked: {summary['outputs']['ranked']}   top {request.top_k}: {summary['outputs']['top']}")
    print("\n".join((Path(args.out) / "top.md").read_text().splitlines()[:12]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from screening import __version__

    parser = argparse.ArgumentParser(
        prog="screening",
        description="High-throughput screening of candidate compositions: featurize, train residual-network "
        "ensembles, and screen chemical spaces ranked by p_stable. Errors a user can fix are one line, "
        "exit code 2. Outputs: docs/outputs.md.",
    )
    parser.add_argument("--version", action="version", version=f"screening {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    feat = commands.add_parser(
        "featurize",
        help="featurize a table of formulas into a Parquet dataset",
        description="Featurize INPUT (CSV or Parquet with a 'formula' column) in chunks on Dask "
        "into DIR/features/*.parquet; unprocessable rows go to DIR/rejected/ with the reason. "
        "Re-running into the same DIR skips chunks already complete.",
    )
    feat.add_argument("input", help="CSV or Parquet file (local path or fsspec URL)")
    feat.add_argument(
        "--featurizer",
        default="magpie145",
        metavar="NAME",
        help=f"one of {', '.join(FEATURIZER_NAMES)} (default magpie145)",
    )
    feat.add_argument("--out", required=True, metavar="DIR", help="output directory")
    feat.add_argument("--chunk-size", type=positive_int, default=50_000, metavar="N")
    add_run_options(feat)
    feat.add_argument("--overwrite", action="store_true", help="replace an existing dataset in DIR")
    feat.add_argument("--json", action="store_true", help="print the summary as JSON")
    feat.set_defaults(handler=_featurize)

    from screening.cli_models import add_commands as add_model_commands
    from screening.request import ScreenRequest

    add_model_commands(commands)

    from screening.cli_campaign import add_commands
    from screening.cli_registry import add_commands as add_registry_commands

    add_commands(commands)
    add_registry_commands(commands)

    hull = commands.add_parser("hull", help="energy above the convex hull of a formula,target table")
    hull.add_argument(
        "--data", required=True, metavar="CSV", help="formula,target (formation energy per atom, eV/atom)"
    )
    hull.add_argument("--out", required=True, metavar="FILE.parquet")
    hull.set_defaults(handler=_hull)

    scr = commands.add_parser(
        "screen",
        help="enumerate, score, place on the hull and rank candidates",
        description="Enumerate every composition of a chemical space, score it with an ensemble, place "
        "it against the hull of known compounds and rank by p_stable (the probability of "
        "being stable; docs/outputs.md). Re-running the same command resumes.",
    )
    add_options(scr, ScreenRequest)
    scr.add_argument(
        "--no-reference",
        action="store_true",
        help="screen without known compounds (the hull is the elements alone): only on purpose",
    )
    add_run_options(scr)
    scr.set_defaults(handler=_screen)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(
            f"screening {args.command}: interrupted; run the same command again to resume (finished chunks are kept)",
            file=sys.stderr,
        )
        return 130
    except (FileNotFoundError, FileExistsError, KeyError, ValueError, ConnectionError, RuntimeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"screening {args.command}: error: {message}", file=sys.stderr)
        return 2


def run() -> None:
    """The ``screening`` command's entry point (:func:`screening.cli_options.run_command`)."""
    run_command(main)


if __name__ == "__main__":
    run()
