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
import sys

FLOWS = {
    "screen-candidates": ("flows.screen_candidates", "screen_candidates"),
    "train-models": ("flows.train_models", "train_models"),
    "featurize-dataset": ("flows.featurize_dataset", "featurize_dataset"),
    "campaign": ("flows.campaign", "campaign"),
    "promote-model": ("flows.promote_model", "promote_model"),
}


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
    from screening.cli_options import skip_final_collections

    skip_final_collections()
    from flows._common import run_from_command_line

    module, name = FLOWS[args.flow]
    code = importlib.import_module(module)
    flow, start_early = getattr(code, name), getattr(code, "start_early", None)

    def call():
        parameters = parse_parameters(args.param)
        known = flow.parameters.properties
        unknown = sorted(set(parameters) - set(known))
        if unknown:
            raise ValueError(f"{args.flow} has no parameter(s) {', '.join(unknown)}; it takes {', '.join(known)}")
        # what the flow can start before Prefect's server answers, then the flow
        with start_early(parameters) if start_early else contextlib.nullcontext(), api.serving():
            return flow(**parameters)

    return run_from_command_line(args.flow, call)


if __name__ == "__main__":
    sys.exit(main())
