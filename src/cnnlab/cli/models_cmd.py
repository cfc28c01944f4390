"""``cnnlab models`` and ``cnnlab build``: what the registry holds, and one model built from it."""

from __future__ import annotations

import argparse

import torch

from cnnlab.analysis import parse_input_size
from cnnlab.analysis.catalog import model_counts
from cnnlab.analysis.report import format_macs
from cnnlab.cli.common import (
    add_model_kwargs_arg,
    build_model,
    count_params,
    format_table,
    nonnegative_int,
    positive_int,
)
from cnnlab.registry import list_models, model_entry


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter such as 'resnet*'")
    p.set_defaults(func=run_models)

    p = sub.add_parser("build", help="build a model and run one input through it")
    p.add_argument("model")
    p.add_argument("--num-classes", type=nonnegative_int, default=None)
    p.add_argument("--in-chans", type=positive_int, default=None)
    p.add_argument("--input", default=None, help="CxHxW such as 3x224x224 (default: the model's own)")
    p.add_argument("--batch", type=positive_int, default=2)
    add_model_kwargs_arg(p)
    p.set_defaults(func=run_build)


def run_models(args: argparse.Namespace) -> int:
    rows = []
    for name, c in model_counts(list_models(args.pattern)).items():  # counted on the meta device, then cached
        macs = format_macs(c.macs) if c.macs is not None else f"? ({c.error})"
        rows.append([name, model_entry(name).family, c.params, macs, model_entry(name).doc])
    headers = ["model", "family", "params", "MACs", "description"]
    print(format_table(rows, headers, right_aligned=[False, False, True, True, False]))
    print("\nMACs at each model's default input size (FlopCounterMode FLOPs / 2), in GMACs or, below a billion, MMACs")
    return 0


def run_build(args: argparse.Namespace) -> int:
    size = parse_input_size(args.input) if args.input is not None else None
    model = build_model(args.model, args.model_kwargs, num_classes=args.num_classes, in_chans=args.in_chans).eval()
    size = size or model.default_input_size
    x = torch.randn(args.batch, *size)
    with torch.no_grad():
        y = model(x)
    print(f"model   {args.model}  ({model_entry(args.model).doc})")
    print(f"params  {count_params(model):,}")
    print(f"input   {tuple(x.shape)}")
    print(f"output  {tuple(y.shape)}")
    return 0
