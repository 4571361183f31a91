"""``screening registry init|promote|show ROOT``: a model registry and its promotions (see
:mod:`screening.registry` and :mod:`screening.promotion`)."""

from __future__ import annotations

import argparse


def add_commands(commands) -> None:
    registry = commands.add_parser("registry", help="a folder of models with aliases, promoted on a fixed benchmark")
    actions = registry.add_subparsers(dest="action", required=True, metavar="ACTION")
    init = actions.add_parser("init", help="create a registry with its fixed benchmark (and a first production model)")
    init.add_argument("root", metavar="ROOT")
    init.add_argument("--known", required=True, nargs="+", metavar="CSV", help="the known compounds (e.g. train.csv)")
    init.add_argument("--hidden", required=True, metavar="CSV", help="the held-out compounds (e.g. val.csv)")
    init.add_argument("--production", metavar="MODEL_DIR", help="register this model as production")
    init.set_defaults(handler=_init)
    promote = actions.add_parser("promote", help="make a model production if it is not worse on the benchmark")
    promote.add_argument("root", metavar="ROOT")
    promote.add_argument("model", metavar="MODEL_DIR")
    promote.add_argument("--force", action="store_true", help="promote even if worse (recorded as forced)")
    promote.set_defaults(handler=_promote)
    show = actions.add_parser("show", help="aliases, models and the promotion history with its figures")
    show.add_argument("root", metavar="ROOT")
    show.set_defaults(handler=_show)


def _init(args: argparse.Namespace) -> int:
    from screening.registry import Registry

    registry = Registry.create(args.root, args.known, args.hidden)
    print(f"registry {registry.root}: benchmark hidden {args.hidden}, known {', '.join(args.known)}")
    if args.production:
        return _promote(argparse.Namespace(root=args.root, model=args.production, force=False))
    return 0


def _promote(args: argparse.Namespace) -> int:
    from screening.promotion import promote
    from screening.registry import Registry

    record = promote(Registry(args.root), args.model, force=args.force)
    print(_describe(record))
    return 0


def _describe(record: dict) -> str:
    verdict = "promoted to production" if record["promoted"] else "not promoted"
    lines = [f"{record['time']} {record['candidate']}: {verdict}" + (" (forced)" if record.get("forced") else "")]
    for who, figures in record.get("figures", {}).items():
        ranking = ", ".join(
            f"{k}-element top-N {m['precision_top_n']:.3f} AUC {m['auc']:.3f}" for k, m in figures["ranking"].items()
        )
        lines.append(f"  {who:10s} MAE {figures['mae']:.4f} ({figures['mae_source']}); {ranking}")
    lines += [f"  worse: {reason}" for reason in record.get("reasons", [])]
    return "\n".join(lines)


def _show(args: argparse.Namespace) -> int:
    from screening.registry import Registry

    registry = Registry(args.root)
    aliases = registry.aliases()
    print(f"registry {registry.root}; benchmark hidden: {registry.benchmark().hidden.path}")
    for key in registry.keys():
        names = ", ".join(alias for alias, k in aliases.items() if k == key)
        print(f"  {key}" + (f"  <- {names}" if names else ""))
    for record in registry.history():
        if record["event"] in ("promoted", "evaluated"):
            print(_describe(record))
    return 0
