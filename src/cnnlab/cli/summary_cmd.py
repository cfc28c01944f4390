"""``cnnlab summary MODEL``: per-layer shapes, parameters, MACs and receptive fields of one model."""

from __future__ import annotations

import argparse

from cnnlab.analysis import analyze, parse_input_size
from cnnlab.cli.common import add_model_kwargs_arg, add_output_args, meta_model, nonnegative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="per-layer shapes, params, MACs and receptive fields of a model")
    p.add_argument("model")
    p.add_argument("--input", default=None, help="CxHxW such as 3x224x224 (default: the model's own)")
    p.add_argument("--depth", type=positive_int, default=None, help="merge rows to module paths of N components")
    p.add_argument("--num-classes", type=nonnegative_int, default=None)
    p.add_argument("--in-chans", type=positive_int, default=None)
    add_model_kwargs_arg(p)
    add_output_args(p, plot_default="summary.png")
    p.set_defaults(func=run_summary)


def run_summary(args: argparse.Namespace) -> int:
    model = meta_model(args.model, args.model_kwargs, num_classes=args.num_classes, in_chans=args.in_chans)
    size = parse_input_size(args.input) if args.input is not None else None
    report = analyze(model, size)
    print(report.render(args.format, depth=args.depth))
    if args.plot:
        from cnnlab.analysis.plots import plot_summary

        print(f"wrote {plot_summary(report, args.plot, depth=args.depth or 2)}")
    return 0
