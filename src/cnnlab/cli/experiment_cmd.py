"""``cnnlab experiment degradation|ablation``: rerun the papers' claims and write the evidence to a folder."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="reproduce a paper's claim: degradation, or an ablation grid")
    kinds = p.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")

    d = kinds.add_parser("degradation", help="plain against residual CIFAR-style nets at several depths")
    d.add_argument("--data", default="mnist5k", help="mnist5k (embedded), cifar10, ... (default: mnist5k)")
    d.add_argument("--data-dir", default="data", help="where torchvision datasets live")
    d.add_argument("--depths", type=int, nargs="+", default=[20, 56], help="6n+2 depths with a plain twin")
    d.add_argument("--epochs", type=int, default=None, help="epochs per run (default: 6)")
    d.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="the same seeds for every model")
    _common(d, "experiments/results/degradation")
    d.set_defaults(func=run_degradation_cmd)

    a = kinds.add_parser("ablation", help="a grid of variants of one family from a YAML file")
    a.add_argument("config", help="an experiment file such as experiments/shortcuts.yaml")
    a.add_argument("--epochs", type=int, default=None, help="override the file's epochs")
    _common(a, "experiments/results/NAME")
    a.set_defaults(func=run_ablation_cmd)


def _common(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--out", type=Path, default=None, help=f"results folder (default: {out})")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="runs trained at once")


def _command() -> str:
    return shlex.join(["cnnlab", *sys.argv[1:]]) if Path(sys.argv[0]).name in ("cnnlab", "__main__.py") else ""


def run_degradation_cmd(args: argparse.Namespace) -> int:
    from cnnlab.experiments.degradation import DEFAULT_RECIPE, run_degradation

    changes = {"data": args.data, "data_dir": args.data_dir}
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    run_degradation(
        depths=args.depths,
        seeds=args.seeds,
        recipe=DEFAULT_RECIPE.replace(**changes),
        out_dir=args.out or Path("experiments/results/degradation"),
        jobs=args.jobs,
        command=_command(),
    )
    return 0


def run_ablation_cmd(args: argparse.Namespace) -> int:
    from cnnlab.experiments.ablation import run_ablation
    from cnnlab.experiments.spec import load_spec

    spec = load_spec(args.config)
    if args.epochs is not None:
        spec = spec.with_recipe(epochs=args.epochs)
    out = args.out or Path("experiments/results") / spec.name
    run_ablation(spec, out_dir=out, jobs=args.jobs, command=_command())
    return 0
