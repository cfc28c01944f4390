"""``cnnlab diagram MODEL``: the network drawn as a graph of its blocks, with shapes, params, MACs and fields."""

from __future__ import annotations

import argparse

from cnnlab.analysis import parse_input_size
from cnnlab.analysis.diagram import diagram
from cnnlab.cli.common import add_model_kwargs_arg, meta_model, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diagram", help="draw the network's blocks as a graph (SVG or PNG)")
    p.add_argument("model")
    p.add_argument("--depth", type=positive_int, default=1, help="collapse modules to N path components (default: 1)")
    p.add_argument("--input", default=None, help="CxHxW such as 3x224x224 (default: the model's own)")
    p.add_argument(
        "--expand", action="append", default=[], metavar="BLOCK", help="open a block fully, e.g. layer1.0 (repeatable)"
    )
    p.add_argument("--rf", action="store_true", help="label each block with its receptive field and jump")
    p.add_argument("--direction", choices=("TB", "LR"), default="TB", help="top-down or left to right (default: TB)")
    p.add_argument("--out", default=None, metavar="FILE", help="FILE.svg or FILE.png (default: MODEL.svg)")
    add_model_kwargs_arg(p)
    p.set_defaults(func=run_diagram)


def run_diagram(args: argparse.Namespace) -> int:
    model = meta_model(args.model, args.model_kwargs)  # the structure is all a drawing needs
    size = parse_input_size(args.input) if args.input is not None else None
    d = diagram(model, size, depth=args.depth, expand=args.expand, rf=args.rf, direction=args.direction)
    path = d.save(args.out or f"{args.model}.svg")
    print(f"wrote {path}: {len(d.blocks)} blocks, {len(d.edges)} arrows, {d.width:.0f}x{d.height:.0f} px")
    return 0
