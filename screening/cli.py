"""The ``screening`` command line. Errors a user can fix are printed as one line, exit code 2."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from screening.featurizers import FEATURIZER_NAMES


def _featurize(args: argparse.Namespace) -> int:
    from screening.featurize_dataset import REJECTED_DIR, featurize_file

    summary = featurize_file(
        args.input,
        args.out,
        featurizer=args.featurizer,
        chunk_size=args.chunk_size,
        scheduler=args.scheduler,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.quiet,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="screening", description=__doc__)
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
        "--featurizer", default="magpie145", metavar="NAME",
        help=f"one of {', '.join(FEATURIZER_NAMES)} (default magpie145)",
    )  # fmt: skip
    feat.add_argument("--out", required=True, metavar="DIR", help="output directory")
    feat.add_argument("--chunk-size", type=_positive_int, default=50_000, metavar="N")
    feat.add_argument("--scheduler", default=None, metavar="ADDRESS",
                      help="address of a running Dask scheduler (default: a local cluster)")
    feat.add_argument("--workers", type=_non_negative_int, default=None, metavar="N",
                      help="local cluster size (default: number of cores, at most 8); 0 runs in this process")
    feat.add_argument("--overwrite", action="store_true", help="replace an existing dataset in DIR")
    feat.add_argument("--quiet", action="store_true", help="no progress bar")
    feat.add_argument("--json", action="store_true", help="print the summary as JSON")
    feat.set_defaults(handler=_featurize)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.handler(args)
    except (FileNotFoundError, FileExistsError, KeyError, ValueError, ConnectionError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"screening {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
