"""The Inception module of BN-Inception (Ioffe & Szegedy 2015, "Batch Normalization", Sec. 4.2.1, Figure 5).

GoogLeNet's module (Fig. 2b) with its 5x5 conv replaced by two stacked 3x3 convs ("double 3x3", the same
5x5 field with 18 instead of 25 weights per channel pair), batch norm after every conv, and the pool branch
either an average or a max pool with a 1x1 projection. The grid reductions 3c and 4e are the same module at
stride 2: no 1x1 branch, the last 3x3 of each conv branch at stride 2, and a stride-2 max pool whose output
is passed through without a projection (Inception-v3's efficient grid reduction, before its paper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from cnnlab.layers.branches import concat_channels, conv_chain
from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.types import LayerFactory


@dataclass(frozen=True)
class BNInceptionWidths:
    """One row of Figure 5: output channels of each conv of the module, its pool and its stride."""

    c1x1: int  # "#1x1"; 0 in the stride-2 modules, which have no 1x1 branch
    c3x3_reduce: int  # "#3x3 reduce"
    c3x3: int  # "#3x3"
    c3x3dbl_reduce: int  # "double #3x3 reduce"
    c3x3dbl: int  # "double #3x3" (both 3x3 convs)
    pool: Literal["avg", "max"]  # "Pool +proj": the pool's kind
    pool_proj: int  # "Pool +proj": the projection's width; 0: "pass through" (the stride-2 modules)
    stride: int = 1  # 2 for the grid reductions 3c and 4e


BN_INCEPTION_WIDTHS: dict[str, BNInceptionWidths] = {
    "3a": BNInceptionWidths(64, 64, 64, 64, 96, "avg", 32),  # 28x28x256
    "3b": BNInceptionWidths(64, 64, 96, 64, 96, "avg", 64),  # 28x28x320
    "3c": BNInceptionWidths(0, 128, 160, 64, 96, "max", 0, stride=2),  # 14x14x576
    "4a": BNInceptionWidths(224, 64, 96, 96, 128, "avg", 128),  # 14x14x576
    "4b": BNInceptionWidths(192, 96, 128, 96, 128, "avg", 128),  # 14x14x576
    "4c": BNInceptionWidths(160, 128, 160, 128, 160, "avg", 128),  # 14x14x608
    "4d": BNInceptionWidths(96, 128, 192, 160, 192, "avg", 128),  # 14x14x608
    "4e": BNInceptionWidths(0, 128, 192, 192, 256, "max", 0, stride=2),  # 7x7x1056
    "5a": BNInceptionWidths(352, 192, 320, 160, 224, "avg", 128),  # 7x7x1024
    "5b": BNInceptionWidths(352, 192, 320, 192, 224, "max", 128),  # 7x7x1024
}
"""The ten Inception modules of Figure 5 (output sizes at 224x224 in the comments)."""

_POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


class BNInception(nn.Module):
    """``branch1x1`` (absent at stride 2), ``branch3x3``, ``branch3x3dbl``, ``branch_pool`` concatenated.

    The stride-2 convs and pool are padded by 1, so every branch halves any grid to the same size (the
    Caffe port's ceil-mode pool agrees with it on even grids only). The average pools count the zero padding.

    Args:
        in_chs: input channels.
        widths: the module's row of Figure 5.
        conv_layer: the conv unit (conv-BN-ReLU).
    """

    def __init__(self, in_chs: int, widths: BNInceptionWidths, *, conv_layer: LayerFactory = ConvBnAct) -> None:
        super().__init__()
        w, s = widths, widths.stride
        pool = _POOLS[w.pool](3, stride=s, padding=1)
        last = (3, s, 1)  # the last 3x3 of a branch carries the module's stride
        if w.c1x1:  # the stride-2 modules have no 1x1 branch
            self.branch1x1 = conv_layer(in_chs, w.c1x1, 1)
        self.branch3x3 = conv_chain(in_chs, [(w.c3x3_reduce, 1), (w.c3x3, *last)], conv_layer=conv_layer)
        self.branch3x3dbl = conv_chain(
            in_chs, [(w.c3x3dbl_reduce, 1), (w.c3x3dbl, 3), (w.c3x3dbl, *last)], conv_layer=conv_layer
        )
        self.branch_pool = nn.Sequential(pool, conv_layer(in_chs, w.pool_proj, 1)) if w.pool_proj else pool
        self.widths = widths
        self.out_chs = w.c1x1 + concat_channels(in_chs, self.branch3x3, self.branch3x3dbl, self.branch_pool)

    def forward(self, x: Tensor) -> Tensor:
        first = [self.branch1x1(x)] if self.widths.c1x1 else []  # none in the stride-2 modules
        branches = [*first, self.branch3x3(x), self.branch3x3dbl(x), self.branch_pool(x)]
        return torch.cat(branches, dim=1)  # N x out_chs x H/s x W/s
