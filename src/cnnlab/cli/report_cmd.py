"""``cnnlab report MODEL|RUN|RESULTS``: one self-contained HTML page of a model, a training run or an experiment."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.cli.common import add_model_kwargs_arg, known_model, nonnegative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page of a model, a run folder or an experiment folder")
    p.add_argument("target", metavar="MODEL|RUN|RESULTS", help="a model name, a run folder or a results folder")
    p.add_argument("--out", default=None, metavar="HTML", help="(default: MODEL-report.html, or FOLDER/report.html)")
    p.add_argument("--input", default=None, help="a model's input CxHxW (default: the model's own)")
    p.add_argument("--depth", type=positive_int, default=1, help="a model's diagram depth (default: 1)")
    p.add_argument("--expand", action="append", default=[], metavar="BLOCK", help="open a block of the diagram")
    p.add_argument("--erf-samples", type=nonnegative_int, default=4, help="random inputs for the ERF (0: none)")
    p.add_argument("--data-dir", default=None, help="a run's data folder (default: the one it was trained with)")
    add_model_kwargs_arg(p)
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from cnnlab.pages import write_report

    if not Path(args.target).exists():  # not a folder: a model's name
        known_model(args.target)
    path = write_report(
        args.target, args.out, model_kwargs=args.model_kwargs, input_size=args.input, depth=args.depth,
        expand=args.expand, erf_samples=args.erf_samples, data_dir=args.data_dir,
    )  # fmt: skip
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0
