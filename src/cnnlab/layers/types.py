"""Type aliases shared by the blocks: a layer is passed into a block as a factory (a class or a partial)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

LayerFactory = Callable[..., nn.Module]
"""Something that builds a layer: ``nn.ReLU``, ``nn.BatchNorm2d``, ``partial(SqueezeExcite, reduction=16)``."""

Size2 = int | tuple[int, int]
"""A kernel size, stride, padding or dilation: one int for both axes or an (h, w) pair."""


def pair(v: Size2) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(1, 7) -> (1, 7)``."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def make_divisible(value: float, divisor: int = 8, *, min_value: int | None = None) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``, default ``divisor``),
    never more than 10% below ``value``: the channel rounding of the MobileNet and ShuffleNet width multipliers."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded
