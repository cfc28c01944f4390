"""Helpers shared by the commands: counts and model arguments as argparse types, models built from them, aligned
tables."""

from __future__ import annotations

import argparse
import json
from typing import Any

from torch import nn

from cnnlab import registry
from cnnlab.analysis.report import format_table as format_table  # one table format for every command


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


def json_object(text: str) -> dict[str, Any]:
    """The argparse type of ``--model-kwargs``: a JSON object such as ``'{"attn_layer": "se"}'``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text!r}") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"drop_rate\": 0.2}}', got {text!r}")
    return value


def add_model_kwargs_arg(p: argparse.ArgumentParser) -> None:
    """``--model-kwargs JSON``: any registered variant, with layers by name (``{"attn_layer": "se"}``)."""
    p.add_argument(
        "--model-kwargs",
        type=json_object,
        default={},
        metavar="JSON",
        help='model arguments as JSON, layers by name, e.g. \'{"attn_layer": {"name": "se", "reduction": 4}}\'',
    )


def known_model(name: str) -> str:
    """``name`` when the registry holds it; else the registry's error, pointing to ``cnnlab models`` (what lists
    the names on the command line) rather than to the Python call."""
    if name not in registry.model_entries():
        raise registry.unknown_model(name, listed_by="`cnnlab models`")
    return name


def meta_model(name: str, kwargs: dict[str, Any] | None = None, **sizes: int | None) -> nn.Module:
    """:func:`cnnlab.registry.meta_model` of a name typed on the command line: the structure and the counts of a
    model without its weights (what the analysis commands need)."""
    return registry.meta_model(known_model(name), kwargs, **sizes)


def build_model(name: str, kwargs: dict[str, Any] | None = None, **sizes: int | None) -> nn.Module:
    """:func:`cnnlab.registry.build_model` of a name typed on the command line (real weights)."""
    return registry.build_model(known_model(name), kwargs, **sizes)


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def add_output_args(p: argparse.ArgumentParser, *, plot_default: str) -> None:
    """``--format table|json|csv`` and ``--plot [PNG]`` (default file name ``plot_default``)."""
    from cnnlab.analysis.report import OUTPUT_FORMATS

    p.add_argument("--format", choices=OUTPUT_FORMATS, default="table", help="output format (default: table)")
    p.add_argument(
        "--plot", nargs="?", const=plot_default, default=None, metavar="PNG", help=f"save a PNG ({plot_default})"
    )
