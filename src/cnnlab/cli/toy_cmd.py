"""``cnnlab toy residual``: the design notes' residual-learning example, computed from a real ``nn.Linear(2, 2)``
at its default initialisation and trained with and without a shortcut over many seeds."""

from __future__ import annotations

import argparse
import json

from cnnlab.analysis.report import format_table, rows_to_csv
from cnnlab.analysis.toys import (
    TOY_INIT_HEADERS,
    TOY_TASKS,
    TOY_TRAIN_HEADERS,
    ToyConfig,
    residual_toy,
    toy_tables,
)
from cnnlab.cli.common import add_output_args, positive_int

DEFAULTS = ToyConfig()


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("toy", help="the notes' toy examples, computed: `cnnlab toy residual`")
    kinds = p.add_subparsers(dest="toy", required=True, metavar="TOY")
    r = kinds.add_parser(
        "residual",
        help="F(x) of nn.Linear(2, 2) at init beside x, then SGD steps to h(x) = x with and without a shortcut",
        description="The notes' example: at x = [2, 1] a default-initialised nn.Linear(2, 2) outputs F(x) closer "
        "to 0 than to x; trained by SGD, a residual stack (h = x + F(x)) must bring F to 0, a plain one must learn "
        "h(x) = x. Tasks: 'point' (the notes' x alone) and 'identity' (h(x) = x on x and --points - 1 random "
        "inputs); depths: the notes' single layer and deeper linear stacks.",
    )
    r.add_argument("--seeds", type=positive_int, default=DEFAULTS.seeds, help=f"initialisations ({DEFAULTS.seeds})")
    r.add_argument("--depths", type=positive_int, nargs="+", default=list(DEFAULTS.depths),
                   help=f"layers per stack ({' '.join(map(str, DEFAULTS.depths))})")  # fmt: skip
    r.add_argument("--tasks", nargs="+", choices=TOY_TASKS, default=list(DEFAULTS.tasks), help="point, identity")
    r.add_argument("--lr", type=_positive_float, default=DEFAULTS.lr, help=f"SGD learning rate ({DEFAULTS.lr})")
    r.add_argument("--tol", type=_positive_float, default=DEFAULTS.tol,
                   help=f"reached: RMS |h(x) - x| below this ({DEFAULTS.tol})")  # fmt: skip
    r.add_argument("--max-steps", type=positive_int, default=DEFAULTS.max_steps, help=f"({DEFAULTS.max_steps})")
    r.add_argument("--points", type=positive_int, default=DEFAULTS.points,
                   help=f"inputs of the identity task ({DEFAULTS.points})")  # fmt: skip
    r.add_argument("--init-scale", type=_positive_float, default=DEFAULTS.init_scale,
                   help="multiply PyTorch's default init by this (1: the default; 0.1: weights near zero)")  # fmt: skip
    add_output_args(r, plot_default="toy-residual.png")
    r.set_defaults(func=run_residual)


def run_residual(args: argparse.Namespace) -> int:
    config = ToyConfig(
        seeds=args.seeds,
        depths=tuple(args.depths),
        tasks=tuple(args.tasks),
        lr=args.lr,
        tol=args.tol,
        max_steps=args.max_steps,
        points=args.points,
        init_scale=args.init_scale,
    )
    report = residual_toy(config)
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    elif args.format == "csv":
        print(rows_to_csv(report.to_dict()["training"]), end="")
    else:
        init, train = toy_tables(report)
        scaled = "" if config.init_scale == 1 else f" x {config.init_scale:g}"
        print(f"nn.Linear(2, 2) at PyTorch's default initialisation{scaled}, x = [2, 1], {config.seeds} seeds")
        print(format_table(init, TOY_INIT_HEADERS))
        print(
            f"\nSGD (lr {config.lr:g}) on 0.5 |h(x) - x|^2 until the RMS distance < {config.tol:g}, at most "
            f"{config.max_steps} steps; linear layers, the same initialisations with and without the shortcut"
        )
        print(format_table(train, TOY_TRAIN_HEADERS))
        print("\nshortcut wins: share of seeds where the shortcut reached the tolerance in fewer steps")
    if args.plot:
        from cnnlab.analysis.plots import plot_residual_toy

        print(f"wrote {plot_residual_toy(report, args.plot)}")
    return 0
