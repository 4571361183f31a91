"""Shared pieces of the command lines. Options are read from a dataclass's own fields (see
:func:`screening.request.option`), so that a request is declared once: its names, defaults and
help, for the command line as for Python and the flows."""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path
from typing import NoReturn


def run_command(main: Callable[[], int]) -> NoReturn:
    """Run ``main`` as its process's command and end the process with the code it returns, once
    every exit handler has run (Prefect's log and event flushes, its temporary server's stop,
    Dask's and multiprocessing's clean-up, logging's flush), without the interpreter's teardown
    that would follow them: its last garbage collections walk every object that torch, Prefect
    and pandas left, and it frees them one by one, ~1.4 s of the main job's 13-15 s (measured:
    1.42-1.57 s from the flow's return to the process's end, ~0.1 s without the teardown; its
    DuckDB also warns of "leaked" objects when those collections are skipped by other means).
    Memory and open descriptors are the operating system's to release, as at the end of any
    process; a command writes and closes its files before it returns. For a command's own
    process only: tests call ``main`` and keep their interpreter."""
    atexit.register(_end_process)  # registered before the command's own handlers: runs after them
    try:
        _EXIT_CODE[0] = code = int(main() or 0)  # None: success, as sys.exit(None)
    except SystemExit as stop:  # argparse's --help (0) and usage errors (2), a sys.exit of main's own
        _EXIT_CODE[0] = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
        raise
    except KeyboardInterrupt:  # outside main's own handling: as the shell reports an interrupt
        _EXIT_CODE[0] = 130
        raise
    sys.exit(code)


_EXIT_CODE = [1]  # what the process ends with if main raises instead of returning (as Python's own)


def _end_process() -> None:
    logging.shutdown()  # registered when logging was imported, maybe before this: it would run after
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or gone: nothing left to say
            pass
    os._exit(_EXIT_CODE[0])


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Where a chunked run computes (``--scheduler``, ``--workers``) and whether it shows progress."""
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="address of a running Dask scheduler (default: a local cluster)",
    )
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="local cluster size (default: one per core, at most 8; 0: no Dask, in this process)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of a chunked run (featurize, screen, campaign) from :func:`add_run_options`."""
    return {"scheduler": args.scheduler, "workers": args.workers, "progress": not args.quiet}


def _parser_of(annotation: str):
    """The argparse type of a field annotated ``int``, ``int | None``, ``float`` or ``str``."""
    kinds = {"int": positive_int, "float": float, "str": str}
    base = annotation.replace(" | None", "")
    if base not in kinds:
        raise TypeError(f"no command-line type for {annotation!r}: give the option a parse= function")
    return kinds[base]


def add_options(parser: argparse.ArgumentParser, cls) -> None:
    """One option per field of ``cls`` that carries command-line metadata."""
    for f in fields(cls):
        cli = f.metadata.get("cli")
        if cli is None:
            continue
        flag = cli.get("flag", "--" + f.name.replace("_", "-"))
        help_text = cli["help"]
        kwargs: dict = {"dest": f.name}
        if f.type == "bool":
            kwargs["action"] = "store_false" if cli.get("invert") else "store_true"
            kwargs["default"] = f.default
        else:
            if cli.get("append"):
                kwargs["action"] = "append"
                kwargs["type"] = cli.get("parse", str)
            else:
                kwargs["type"] = cli.get("parse") or _parser_of(f.type)
            if f.default is MISSING and f.default_factory is MISSING:
                kwargs["required"] = True
            else:
                kwargs["default"] = None if f.default is MISSING else f.default
                if f.default not in (None, MISSING) and "default" not in help_text:
                    help_text += f" (default {f.default})"
            if "metavar" in cli:
                kwargs["metavar"] = cli["metavar"]
        parser.add_argument(flag, help=help_text, **kwargs)


def from_options(cls, args: argparse.Namespace, **extra):
    """The dataclass built from the parsed options (an option left out takes the field's default)."""
    values = {}
    for f in fields(cls):
        if "cli" not in f.metadata:
            continue
        value = getattr(args, f.name)
        if value is None and f.default_factory is not MISSING:
            value = f.default_factory()
        values[f.name] = value
    return cls(**values, **extra)


def check_out_file(out: str) -> None:
    path = Path(out)
    if path.is_dir():
        raise FileExistsError(f"--out {out} is a folder; give a file name (e.g. {path / 'predictions.parquet'})")
    if path.exists():
        raise FileExistsError(f"--out {out} exists; choose another file or remove it first")


def write_table(table, out: str, what: str, rejected: list, why: str) -> None:
    """Write a result table and, beside it, the rows that did not make it, with reasons."""
    import pandas as pd

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path, index=False)
    print(f"{what} -> {path}")
    if rejected:
        beside = path.with_suffix(".rejected.csv")
        pd.DataFrame([r.__dict__ for r in sorted(rejected, key=lambda r: r.index)]).to_csv(beside, index=False)
        print(f"{len(rejected):,} {why}; reasons in {beside}")
