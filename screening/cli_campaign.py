"""``screening campaign plan|run FILE`` and ``screening catalog top|diff ROOT`` (see
:mod:`screening.campaign` and :mod:`screening.catalog`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from screening.cli_options import add_run_options, run_options


def add_commands(commands) -> None:
    campaign = commands.add_parser("campaign", help="screen many chemical spaces over several runs into a catalog")
    actions = campaign.add_subparsers(dest="action", required=True, metavar="ACTION")
    plan = actions.add_parser("plan", help="what is done and what is left, per space, for the current model")
    plan.add_argument("file", metavar="FILE", help="campaign file (YAML)")
    plan.set_defaults(handler=_plan)
    run = actions.add_parser("run", help="screen what is left, up to the campaign's budget, and publish")
    run.add_argument("file", metavar="FILE", help="campaign file (YAML)")
    add_run_options(run)
    run.set_defaults(handler=_run)

    catalog = commands.add_parser("catalog", help="query a campaign's catalog")
    queries = catalog.add_subparsers(dest="action", required=True, metavar="ACTION")
    top = queries.add_parser("top", help="the best candidates of the catalog")
    top.add_argument("where", metavar="FILE|ROOT", help="campaign file or its root folder")
    top.add_argument("-n", type=int, default=20, help="how many (default 20)")
    top.add_argument("--model", help="a model key, or 'all' (default: the model of the last run)")
    top.set_defaults(handler=_top)
    diff = queries.add_parser("diff", help="what entered and left the best candidates since the previous run")
    diff.add_argument("where", metavar="FILE|ROOT", help="campaign file or its root folder")
    diff.add_argument("-n", type=int, default=20, help="the best how many (default 20)")
    diff.set_defaults(handler=_diff)


def _root(where: str) -> Path:
    from screening.campaign import load_campaign

    return load_campaign(where).root if where.endswith((".yaml", ".yml")) else Path(where)


def _plan(args: argparse.Namespace) -> int:
    from screening.campaign import load_campaign, plan_campaign

    rows = plan_campaign(load_campaign(args.file))
    print(f"{'space':24s} {'candidates':>12s} {'done':>12s} {'left':>12s}  published")
    for r in rows:
        published = "yes" if r["published"] else "no"
        print(f"{r['space']:24s} {r['candidates']:12,d} {r['done']:12,d} {r['left']:12,d}  {published}")
    total = {k: sum(r[k] for r in rows) for k in ("candidates", "done", "left")}
    print(f"{'all':24s} {total['candidates']:12,d} {total['done']:12,d} {total['left']:12,d}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from screening.campaign import load_campaign, run_campaign

    record = run_campaign(load_campaign(args.file), **run_options(args))
    scored = sum(s["candidates_scored"] for s in record["spaces"])
    print(
        f"run {record['run']}: {scored:,} candidates scored; stopped: {record['stopped']} ({record['seconds']:.0f} s)"
    )
    return 0


def _top(args: argparse.Namespace) -> int:
    from screening.catalog import top

    print(top(_root(args.where), args.n, args.model).to_string(index=False))
    return 0


def _diff(args: argparse.Namespace) -> int:
    from screening.catalog import diff

    print(json.dumps(diff(_root(args.where), args.n), indent=2))
    return 0
