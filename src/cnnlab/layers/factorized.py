"""Factorised convolutions (Szegedy et al. 2016, "Rethinking the Inception Architecture", Sec. 3).

* An n x n conv as a stack of (n - 1) / 2 3x3 convs (Sec. 3.1, Fig. 1): the same receptive field with fewer
  weights, 2 x 9 = 18 against 25 per channel pair for a 5x5 (28% fewer), and an extra non-linearity.
* An n x n conv as a 1 x n followed by an n x 1 (Sec. 3.2, Fig. 3): 2n against n^2 weights, 33% fewer for
  n = 3; the paper uses it on medium grids (12 to 20), with n = 7 on the 17x17 grid.
* The same pair side by side (Fig. 7, "expanded filter bank") on the coarsest grid, for wider outputs.
"""

from __future__ import annotations

import itertools

from torch import nn

from cnnlab.errors import ModelArgumentError
from cnnlab.layers.branches import Concat
from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.types import LayerFactory


def _check_odd(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 3 or n % 2 == 0:
        raise ModelArgumentError(f"a factorised n x n conv needs an odd n >= 3, got {n!r}")


def stacked_3x3(
    in_chs: int, out_chs: int, n: int, *, mid_chs: int | None = None, conv_layer: LayerFactory = ConvBnAct
) -> nn.Sequential:
    """An n x n receptive field as (n - 1) / 2 stacked 3x3 convs; the inner ones output ``mid_chs``
    (default ``out_chs``)."""
    _check_odd(n)
    depth = (n - 1) // 2
    widths = [in_chs] + [mid_chs or out_chs] * (depth - 1) + [out_chs]
    return nn.Sequential(*(conv_layer(a, b, 3) for a, b in itertools.pairwise(widths)))


def asymmetric(
    in_chs: int,
    out_chs: int,
    n: int,
    *,
    mid_chs: int | None = None,
    transpose: bool = False,
    conv_layer: LayerFactory = ConvBnAct,
) -> nn.Sequential:
    """An n x n conv as a 1 x n conv (to ``mid_chs``, default ``out_chs``) then an n x 1 conv;
    ``transpose=True`` puts the n x 1 first."""
    _check_odd(n)
    first, second = ((n, 1), (1, n)) if transpose else ((1, n), (n, 1))
    mid_chs = mid_chs or out_chs
    return nn.Sequential(conv_layer(in_chs, mid_chs, first), conv_layer(mid_chs, out_chs, second))


def expanded_asymmetric(in_chs: int, out_chs: int, n: int, *, conv_layer: LayerFactory = ConvBnAct) -> Concat:
    """A 1 x n (``a``) and an n x 1 (``b``) conv side by side, ``out_chs`` each, concatenated (Fig. 7)."""
    _check_odd(n)
    return Concat(in_chs, a=conv_layer(in_chs, out_chs, (1, n)), b=conv_layer(in_chs, out_chs, (n, 1)))
