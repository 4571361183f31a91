"""Run a flow here, on Prefect's embedded API (or the server ``PREFECT_API_URL`` names), with its
parameters given as ``prefect deployment run`` takes them::

    python -m flows screen-candidates -p elements='["Li","Co","O"]' -p model=data/models/default \\
        -p out=runs/y -p reference='["{data}/mp_e_form/train.csv"]'

Each ``-p name=value`` is read as JSON when it parses (lists, numbers, true/false), as text
otherwise. The parameters are the flow's own: its signature declares and validates them (the
same rules a deployment run meets), so nothing is declared twice. Errors a user can fix are one
line, exit code 2; Ctrl-C says how to resume, exit code 130.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json

FLOWS = {
    "screen-candidates": ("flows.screen_candidates", "screen_candidates"),
    "train-models": ("flows.train_models", "train_models"),
    "featurize-dataset": ("flows.featurize_dataset", "featurize_dataset"),
    "campaign": ("flows.campaign", "campaign"),
    "promote-model": ("flows.promote_model", "promote_model"),
}
# what a flow starts before its code (and Prefect) is imported: a module without Prefect whose
# ``start_early(parameters)`` is a context manager the flow's call runs within
EARLY = {"screen-candidates": "flows.screen_early"}


def parse_parameters(pairs: list[str]) -> dict:
    parameters = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"parameter {pair!r} is not name=value")
        try:
            parameters[name] = json.loads(text)
        except json.JSONDecodeError:
            parameters[name] = text
    return parameters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows", description=__doc__.split("\n\n")[0])
    parser.add_argument("flow", choices=sorted(FLOWS))
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)

    from flows._api import TemporaryApi

    api = TemporaryApi.start_if_needed()  # starts while the flow's code is imported
    with _started_early(args.flow, args.param):
        from flows._common import run_from_command_line

        module, name = FLOWS[args.flow]
        flow = getattr(importlib.import_module(module), name)

        def call():
            parameters = parse_parameters(args.param)
            known = flow.parameters.properties
            unknown = sorted(set(parameters) - set(known))
            if unknown:
                raise ValueError(f"{args.flow} has no parameter(s) {', '.join(unknown)}; it takes {', '.join(known)}")
            with api.serving():
                return flow(**parameters)

        return run_from_command_line(args.flow, call)


def _started_early(name: str, pairs: list[str]) -> contextlib.AbstractContextManager:
    """The flow's early start (:data:`EARLY`), for parameters that parse (the flow reports those
    that do not), else nothing."""
    if name not in EARLY:
        return contextlib.nullcontext()
    try:
        parameters = parse_parameters(pairs)
    except ValueError:
        return contextlib.nullcontext()
    return importlib.import_module(EARLY[name]).start_early(parameters)


if __name__ == "__main__":
    from screening.cli_options import run_command

    run_command(main)
