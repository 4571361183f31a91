"""``screening train|merge|evaluate|calibrate|predict``: the model commands of the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from screening.cli_options import check_out_file, positive_int, write_table


def add_commands(commands) -> None:
    from screening.models.config import RECIPE_FEATURES, TrainConfig
    from screening.models.designs import ARCHITECTURES

    train = commands.add_parser("train", help="train an ensemble of residual networks")
    train.add_argument(
        "--train",
        required=True,
        nargs="+",
        metavar="CSV",
        help="formula,target table(s); several are concatenated (a final model on train + val)",
    )
    train.add_argument(
        "--aux",
        nargs="+",
        metavar="CSV",
        help="formula,target table(s) of other sources (e.g. OQMD beside MP): they train the "
        "network through an output unit of their own; the model predicts --train's source",
    )
    held_out = train.add_mutually_exclusive_group()
    held_out.add_argument("--val", metavar="CSV", help="validation table (default: 10%% of --train)")
    held_out.add_argument(
        "--no-val",
        action="store_true",
        help="train on every row, keep the last epoch (a fixed schedule validated on another run)",
    )
    train.add_argument(
        "--arch",
        default=TrainConfig.architecture,
        choices=sorted(ARCHITECTURES),
        metavar="NAME",
        help=f"one of {', '.join(sorted(ARCHITECTURES))}",
    )
    train.add_argument(
        "--features",
        default=RECIPE_FEATURES,
        metavar="SPEC",
        help=f"featurizer spec (default {RECIPE_FEATURES})",
    )
    recipe = "the shipped recipe's"
    train.add_argument(
        "--members", type=positive_int, default=None, metavar="K", help=f"default {TrainConfig.members} ({recipe})"
    )
    train.add_argument("--out", required=True, metavar="DIR")
    train.add_argument("--epochs", type=positive_int, default=None, help=f"default {TrainConfig.epochs} ({recipe})")
    train.add_argument("--batch-size", type=positive_int, default=None, help=f"default {TrainConfig.batch_size}")
    train.add_argument("--lr", type=float, default=None, help=f"peak learning rate, default {TrainConfig.lr:g}")
    train.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help=f"AdamW decoupled weight decay (default {TrainConfig.weight_decay:g}, {recipe}; iBRNet: 0)",
    )
    train.add_argument("--schedule", choices=["onecycle", "plateau", "constant"], default=None)
    train.add_argument("--patience", type=positive_int, default=None, help="early stopping, epochs")
    train.add_argument(
        "--ranking",
        action="store_true",
        help="with --val: also fit the stability model (p_stable) on the screening situation of the "
        "validation table (its compounds' systems enumerated and screened with this model)",
    )
    train.add_argument("--bf16", action="store_true", help="bfloat16 autocast for matmuls")
    train.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training forward (fused element-wise passes; compiling takes a minute or so)",
    )
    train.add_argument("--half", action="store_true", help="store weights as float16")
    train.add_argument("--seed", type=int, default=None)
    train.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="wall-time budget; one-cycle is fitted to it (as many epochs as fit, at most --epochs, "
        "measured after the second epoch); other schedules stop there",
    )
    train.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(handler=_train)

    merge = commands.add_parser("merge", help="pool the members of models trained on the same tables into one")
    merge.add_argument("--models", required=True, nargs="+", metavar="DIR", help="two or more model folders")
    merge.add_argument("--out", required=True, metavar="DIR")
    merge.set_defaults(handler=_merge)

    evaluate = commands.add_parser("evaluate", help="MAE, RMSE, R2 and a parity plot of a model on a table")
    evaluate.add_argument("--model", required=True, metavar="DIR")
    evaluate.add_argument("--data", required=True, metavar="CSV")
    evaluate.add_argument("--plot", metavar="PNG", help="parity plot path (default parity_<data>.png)")
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--device", default="auto")
    evaluate.set_defaults(handler=_evaluate)

    calibrate = commands.add_parser(
        "calibrate", help="fit the ensemble's predictive uncertainty on held-out data (stored in its card)"
    )
    calibrate.add_argument("--model", required=True, metavar="DIR")
    source = calibrate.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", metavar="CSV", help="formula,target rows the model was not trained on")
    source.add_argument(
        "--like",
        metavar="TWIN_DIR",
        help="a model trained on every row (--no-val): take the validation and the fitted uncertainty "
        "of its twin, trained the same way on part of its data with --val (and its stability model)",
    )
    source.add_argument(
        "--ranking-from",
        metavar="MODEL_DIR",
        help="take only the stability model (p_stable) of another model folder (fitted by train --ranking "
        "with a model that did not see the ranking's validation table); the card records where it came from",
    )
    calibrate.add_argument(
        "--rows",
        choices=["all", "even", "odd"],
        default="all",
        help="which rows of --data to use (keep the others to check the calibration)",
    )
    calibrate.add_argument("--device", default="auto")
    calibrate.set_defaults(handler=_calibrate)

    predict = commands.add_parser("predict", help="predictions with uncertainty for a table of formulas")
    predict.add_argument("--model", required=True, metavar="DIR")
    predict.add_argument("--data", required=True, metavar="CSV")
    predict.add_argument("--out", required=True, metavar="FILE.parquet")
    predict.add_argument("--members", action="store_true", help="also write each member's prediction")
    predict.add_argument("--device", default="auto")
    predict.set_defaults(handler=_predict)


def _train(args: argparse.Namespace) -> int:
    from screening.models.config import TrainConfig
    from screening.models.fit import fit, prepare_data

    if args.ranking and not args.val:
        raise ValueError(
            "--ranking needs --val: the stability model is fitted on the validation table's screening situation"
        )
    config = TrainConfig.for_architecture(
        args.arch,
        members=args.members,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        patience=args.patience,
        bf16=args.bf16,
        seed=args.seed,
        max_minutes=args.max_minutes,
        compile=args.compile or None,
    )
    command = "screening " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["train"] else None
    data = prepare_data(
        args.train, args.val, args.features, config.seed, args.out, holdout=not args.no_val, auxiliary=args.aux or ()
    )
    model, metrics = fit(data, config, args.out, args.device, progress=not args.quiet, half=args.half, command=command)
    if not metrics:
        print(
            f"trained {model.card['architecture']} x{model.members} on {model.featurizer} on every row of "
            f"{' + '.join(args.train)} (no validation: evaluate the recipe on a run with --val)"
        )
        print(f"model: {args.out} (card.json, model.safetensors, learning_curve.png)")
        return 0
    print(
        f"trained {model.card['architecture']} x{model.members} on {model.featurizer}: validation "
        f"MAE {metrics['mae']:.4f}, RMSE {metrics['rmse']:.4f}, R2 {metrics['r2']:.4f} "
        f"(members {', '.join(f'{m:.4f}' for m in metrics['members_mae'])})"
    )
    print(f"model: {args.out} (card.json, model.safetensors, learning_curve.png, parity_val.png)")
    if args.ranking:
        _fit_ranking(args.out, args.train, args.val, quiet=args.quiet)
    return 0


def _fit_ranking(model_dir: str, known: list[str], hidden: str, quiet: bool = False) -> None:
    """Fit the model folder's stability model on the screening situation of ``hidden``."""
    from screening.models.card import record_stability
    from screening.stability_fit import fit_stability

    def log(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    fitted = fit_stability(model_dir, known, hidden, Path(model_dir) / "rediscovery", log=log, system_level=True)
    fitted.model.record["command"] = "screening " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["train"] else None
    fitted.model.save(model_dir)
    record_stability(model_dir, fitted.model.record)
    for k, m in fitted.model.record["benchmark"].items():
        print(
            f"p_stable, {k}-element systems ({m['candidates']:,} candidates, {m['prevalence']:.2%} stable): top-N "
            "precision "
            f"{m['precision_top_n']:.3f} ({m['enrichment_top_n']:.0f}x), recall in the top 5% "
            f"{m['recall_top_5pct']:.3f}, "
            f"AUC {m['auc']:.3f}, first of system {m['first_of_system']:.3f}, ECE {m['ece']:.4f}"
        )
    system = fitted.model.record["system"]
    print(
        f"p_system ({system['systems']:,} systems, {system['hide_a_stable_compound']:,} hide a stable compound): "
        f"AUC {system['auc']:.3f}, ECE {system['ece']:.4f}"
    )
    for k, m in fitted.model.record.get("null_systems", {}).items():
        mixed = fitted.model.record["benchmark_with_null_systems"][k]
        print(
            f"p_stable, {k}-element systems that hold no stable compound ({m['systems']:,}): "
            f"{m['p_stable_per_system']:.2f} per system; with them in the grid: top-N precision "
            f"{mixed['precision_top_n']:.3f}, AUC {mixed['auc']:.3f}, ECE {mixed['ece']:.4f}"
        )


def _evaluate(args: argparse.Namespace) -> int:
    from screening.models.ensemble import load_model
    from screening.models.fit import evaluate

    plot = Path(args.plot or f"parity_{Path(args.data).stem}.png")
    metrics = evaluate(load_model(args.model, args.device), args.data, plot)
    if args.json:
        print(json.dumps(metrics | {"parity_plot": str(plot)}))
    else:
        print(
            f"MAE {metrics['mae']:.4f}  RMSE {metrics['rmse']:.4f}  R2 {metrics['r2']:.4f}  "
            f"n={metrics['n']:,} ({metrics['rows_rejected']} rows rejected)"
        )
        if metrics["trained_on_these_rows"]:
            print(f"note: {args.model} was trained on {args.data}; these are training errors, not a validation")
        print(f"parity plot: {plot}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from screening.models.merge import merge_models

    if Path(args.out).exists() and any(Path(args.out).iterdir()):
        raise FileExistsError(f"{args.out} exists and is not empty: choose a new folder for the pooled model")
    model, metrics = merge_models(
        args.models, args.out, command=" ".join(["screening", *sys.argv[1:]]) if sys.argv else None
    )
    parts = " + ".join(str(p["members"]) for p in model.card["merged_from"])
    print(
        f"pooled {model.card['architecture']} x{model.members} ({parts}) into {args.out}"
        + (
            f": validation MAE {metrics['mae']:.4f}, RMSE {metrics['rmse']:.4f}, R2 {metrics['r2']:.4f} on "
            f"{metrics['n']:,} rows"
            if metrics
            else " (the parts share no validation table here: evaluate it yourself)"
        )
        + "; re-fit its uncertainty with screening calibrate"
    )
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from screening.datasets import read_formula_table, sha256_of
    from screening.models.calibration import fit_spread
    from screening.models.card import adopt_twin_validation, trained_on, write_card
    from screening.models.ensemble import load_model
    from screening.models.fit import featurize_targets

    if args.ranking_from:
        from screening.models.card import adopt_ranking

        card = adopt_ranking(args.model, args.ranking_from)
        print(f"stability model of {args.ranking_from} (fitted with its energies) written to {args.model}")
        return 0
    if args.like:
        card = adopt_twin_validation(args.model, args.like)
        u = card.get("uncertainty")
        print(
            f"recipe validation of {args.like} (MAE {card['recipe_validation']['metrics']['validation']['mae']:.4f})"
            + (f" and its uncertainty (scale {u['scale']}, floor {u['floor']})" if u else "")
            + (" and its stability model (p_stable)" if card.get("stability") else "")
            + f" written to {Path(args.model) / 'card.json'}"
        )
        return 0
    model = load_model(args.model, args.device)
    if trained_on(model.card, args.data):
        raise ValueError(
            f"{args.model} was trained on {args.data}: its errors there say nothing about its uncertainty; "
            "calibrate on held-out rows, or with --like on a twin trained without them"
        )
    frame = read_formula_table(args.data)
    rows = {"all": slice(None), "even": slice(0, None, 2), "odd": slice(1, None, 2)}[args.rows]
    x, y, _, rejected = featurize_targets(frame.iloc[rows].reset_index(drop=True), model.featurizer, args.data)
    mean, spread, _ = model.predict(x)
    fitted = fit_spread(y - mean, spread)
    card = json.loads((Path(args.model) / "card.json").read_text())
    card["uncertainty"] = fitted | {
        "data": args.data,
        "sha256": sha256_of(args.data),
        "rows": args.rows,
        "rows_rejected": len(rejected),
    }
    card_path = write_card(args.model, card)
    print(
        f"predictive std = sqrt(({fitted['scale']} x spread)^2 + {fitted['floor']}^2): mean CRPS "
        f"{fitted['crps_raw_spread']:.4f} -> {fitted['crps']:.4f} on {fitted['n']:,} rows; written to {card_path}"
    )
    return 0


def _predict(args: argparse.Namespace) -> int:
    from screening.datasets import read_formula_table
    from screening.models.ensemble import load_model, predict_frame

    check_out_file(args.out)  # before any work
    model = load_model(args.model, args.device)
    table, rejected = predict_frame(model, read_formula_table(args.data), members=args.members)
    write_table(table, args.out, f"{len(table):,} predictions", rejected, "rows could not be featurized")
    if table["dilute"].any():
        named = table.loc[table["dilute"], "formula"].tolist()
        print(
            f"{len(named):,} predictions are extrapolations, an element under 0.1 at.% ("
            f"{', '.join(named[:5])}{', ...' if len(named) > 5 else ''}): marked in column 'dilute'"
        )
    return 0
