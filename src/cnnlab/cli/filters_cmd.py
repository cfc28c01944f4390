"""``cnnlab filters RUN``: a trained network's first-layer filters beside a fixed bank of Gabor filters (Serre et
al. 2007, the S1 layer; :class:`cnnlab.layers.GaborConv2d`)."""

from __future__ import annotations

import argparse

from torch import nn

from cnnlab.analysis.filters import comparison_bank, first_conv, kernels
from cnnlab.train.predict import model_from_checkpoint


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("filters", help="a trained run's first-layer filters beside a bank of Gabor filters (PNG)")
    p.add_argument("run", help="a run folder (its best checkpoint) or a checkpoint file")
    p.add_argument("--out", default="filters.png", metavar="PNG", help="where to write the picture (filters.png)")
    p.set_defaults(func=run_filters)


def run_filters(args: argparse.Namespace) -> int:
    from cnnlab.analysis.plots import plot_filters

    model, meta = model_from_checkpoint(args.run)
    path, conv = first_conv(model)
    weights = kernels(conv)
    out, ins, kh, kw = weights.shape
    kind = "learned" if isinstance(conv, nn.Conv2d) else "fixed Gabor bank"
    print(f"{meta['model']} ({meta['path']}): first conv {path}, {out} filters of {ins} x {kh} x {kw}, {kind}")
    bank, caption = comparison_bank(conv)
    title = f"{meta['model']}: {path} ({kind})"
    print(f"wrote {plot_filters(weights, bank, args.out, title=title, bank_title=caption)}")
    return 0
