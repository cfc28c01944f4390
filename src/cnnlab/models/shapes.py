"""What a model takes and gives: the check of its input and the description of its stages' feature maps.

Shared by :class:`~cnnlab.models.base.CnnlabModel` and the features wrapper
:class:`~cnnlab.models.features.FeatureListNet` (which the base class returns from ``as_features``), so that
neither imports the other's module to reach them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from cnnlab.errors import InputShapeError


@dataclass(frozen=True)
class FeatureInfo:
    """One stage: ``module`` (dotted name) outputs ``num_chs`` channels at 1/``reduction`` of the input size
    (``reduction``: the product of the strides before it)."""

    module: str
    num_chs: int
    reduction: int


def check_input(model: nn.Module, args: tuple[Any, ...]) -> None:
    """Forward pre-hook of a model with ``model_name``, ``in_chans`` and ``min_input_size``: reject an input it
    cannot take, with a message that says what it takes."""
    x = args[0] if args else None
    name, c, s = model.model_name, model.in_chans, model.min_input_size
    expected = f"{name} expects a float tensor of shape (N, {c}, H, W) with H, W >= {s}"
    if not isinstance(x, Tensor):
        raise InputShapeError(f"{expected}; got {type(x).__name__}")
    if not x.is_floating_point():
        hint = "; convert with x.float() / 255" if x.dtype == torch.uint8 else "; convert with x.float()"
        raise InputShapeError(f"{expected}; got {x.dtype}{hint}")
    if x.ndim != 4:
        hint = " (add a batch dimension: x.unsqueeze(0))" if x.ndim == 3 else ""
        raise InputShapeError(f"{expected}; got a {x.ndim}-d tensor of shape {tuple(x.shape)}{hint}")
    if x.shape[1] != c:
        raise InputShapeError(
            f"{expected}; got {x.shape[1]} channels in shape {tuple(x.shape)}. "
            f"Build the model with in_chans={x.shape[1]} to accept such input."
        )
    if min(x.shape[-2:]) < s:
        raise InputShapeError(f"{expected}; got {tuple(x.shape[-2:])}: the input is too small for {name}")
