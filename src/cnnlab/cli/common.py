"""Helpers shared by the commands: parsing counts and sizes, printing aligned tables."""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch import nn

from cnnlab.analysis.report import format_table as format_table  # one table format for every command
from cnnlab.registry import create_model


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer >= 1 (a batch size, a count of repeats), else a usage error."""
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """An argparse ``type``: an integer >= 0 (a seed), else a usage error."""
    return _int_at_least(text, 0)


def input_size(text: str) -> tuple[int, int, int]:
    """``"3x224x224"`` -> (3, 224, 224); ``"224"`` -> (3, 224, 224)."""
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) == 1:
        dims = (3, dims[0], dims[0])
    if len(dims) != 3 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected CxHxW such as 3x224x224 (or one size such as 224), got {text!r}")
    return dims  # type: ignore[return-value]


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def meta_model(name: str, **kwargs: Any) -> nn.Module:
    """The model built on the meta device: its structure and counts without allocating its weights."""
    with torch.device("meta"):
        return create_model(name, **kwargs)


def add_output_args(p: argparse.ArgumentParser, *, plot_default: str) -> None:
    """``--format table|json|csv`` and ``--plot [PNG]`` (default file name ``plot_default``)."""
    from cnnlab.analysis.report import OUTPUT_FORMATS

    p.add_argument("--format", choices=OUTPUT_FORMATS, default="table", help="output format (default: table)")
    p.add_argument(
        "--plot", nargs="?", const=plot_default, default=None, metavar="PNG", help=f"save a PNG ({plot_default})"
    )
