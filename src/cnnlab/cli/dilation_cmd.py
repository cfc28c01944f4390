"""``cnnlab dilation 2 2 2``: which input pixels reach one output of a dilated 3x3 stack (the gridding effect)."""

from __future__ import annotations

import argparse
import json

from cnnlab.analysis.gridding import gridding_map
from cnnlab.cli.common import add_output_args, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dilation", help="the gridding map of a stack of dilated convs, from the real layers")
    p.add_argument("rates", nargs="+", type=positive_int, metavar="RATE", help="dilation rates, e.g. 1 2 5")
    p.add_argument("--kernel-size", type=positive_int, default=3, help="odd (default: 3)")
    p.add_argument(
        "--group", type=positive_int, metavar="N",
        help="apply the HDC rule to consecutive groups of N rates (default: to each repeat of the cycle it finds)",
    )  # fmt: skip
    add_output_args(p, plot_default="dilation.png")
    p.set_defaults(func=run_dilation)


def run_dilation(args: argparse.Namespace) -> int:
    grid = gridding_map(args.rates, kernel_size=args.kernel_size, group=args.group)
    hdc = grid.hdc
    summary = {
        "rates": list(grid.rates),
        "kernel_size": grid.kernel_size,
        "receptive_field": grid.field,
        "covered": grid.covered,
        "holes": grid.holes,
        "layers": grid.layers,
        "verdicts": grid.verdicts,
        "hdc": {
            "groups": [list(g) for g in hdc.groups],
            "grouping": hdc.grouping,
            "groups_ok": [v.ok for v in hdc.group_verdicts],
            "rule_ok": hdc.paper.ok,
            "rule": hdc.paper.reason,
            "exact_ok": hdc.exact.ok,
            "exact": hdc.exact.reason,
            "conclusion": hdc.conclusion,
        },
    }
    if args.format == "json":
        print(json.dumps(summary | {"paths": grid.window.astype(int).tolist()}, indent=2))
    elif args.format == "csv":
        print("\n".join(",".join(str(int(v)) for v in row) for row in grid.window))
    else:
        print(grid.text())
        print(f"\nrates {list(grid.rates)}, {grid.kernel_size}x{grid.kernel_size} kernels, measured on {grid.layers}")
        print(f"receptive field {grid.field}x{grid.field}: {grid.covered} pixels reach the centre output (o), "
              f"{grid.holes} holes (.)")  # fmt: skip
        print(grid.verdicts)
    if args.plot:
        from cnnlab.analysis.plots import plot_gridding

        print(f"wrote {plot_gridding(grid, args.plot)}")
    return 0
