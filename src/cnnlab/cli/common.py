"""Helpers shared by the commands: parsing sizes, printing aligned tables."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from cnnlab.registry import create_model


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


def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """An aligned text table: numbers right-aligned with thousands separators, text left-aligned."""

    def cell(v: Any) -> str:
        if isinstance(v, bool) or v is None:
            return "" if v is None else str(v)
        if isinstance(v, int):
            return f"{v:,}"
        if isinstance(v, float):
            return f"{v:,.3f}"
        return str(v)

    text = [[cell(v) for v in row] for row in rows]
    numeric = [
        all(isinstance(r[i], int | float) and not isinstance(r[i], bool) for r in rows) for i in range(len(headers))
    ]
    widths = [max([len(h)] + [len(r[i]) for r in text]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in text)])
