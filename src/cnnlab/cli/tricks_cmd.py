"""``cnnlab tricks``: the arithmetic of every design trick, the formula beside the figure measured live."""

from __future__ import annotations

import argparse
import json

from cnnlab.analysis.tricks import TRICKS, figures_csv, figures_dicts, figures_table, tricks_report
from cnnlab.cli.common import add_output_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tricks", help="each design trick's formula beside the figure measured from cnnlab's blocks")
    p.add_argument("--only", nargs="+", choices=list(TRICKS), default=None, help="some of the tricks")
    add_output_args(p, plot_default="tricks.png")
    p.set_defaults(func=run_tricks)


def run_tricks(args: argparse.Namespace) -> int:
    figures = tricks_report(args.only)
    if args.format == "json":
        print(json.dumps(figures_dicts(figures), indent=2))
    elif args.format == "csv":
        print(figures_csv(figures), end="")
    else:
        print(figures_table(figures))
        print(
            "\nMACs = FlopCounterMode FLOPs / 2; agree '-': a measurement shown beside what an argument assumes, "
            "not held to it (timings are noisy: the median of runs taken in turns)"
        )
    if args.plot:
        from cnnlab.analysis.plots import plot_tricks

        print(f"wrote {plot_tricks(figures, args.plot)}")
    return 0 if all(f.agrees is not False for f in figures) else 1
