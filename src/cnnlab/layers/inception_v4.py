"""The Inception-v4 modules (Szegedy, Ioffe, Vanhoucke, Alemi 2017, "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning", Fig. 3-8).

Branches are numbered left to right as drawn (``branch0`` ...), as in the released model (timm), whose
pool branches average without counting the zero padding. Convs marked "V" in the figures are unpadded.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from cnnlab.layers.branches import Concat, concat_channels, conv_chain
from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.factorized import asymmetric, expanded_asymmetric
from cnnlab.layers.grid_reduction import GridReduction
from cnnlab.layers.types import LayerFactory

AVG_POOL_3X3_NO_PAD: LayerFactory = partial(nn.AvgPool2d, 3, stride=1, padding=1, count_include_pad=False)
"""The pool of the pool branches: 3x3 average, stride 1, zero padding not counted (TensorFlow's "SAME")."""


class InceptionV4Stem(nn.Sequential):
    """Fig. 3 (299 -> 35x35x384): 3x3/2 32 V, 3x3 32 V, 3x3 64; ``mixed3a``: max pool and 3x3/2 96 side by side;
    ``mixed4a``: 1x1 64, 3x3 96 V beside 1x1 64, 7x1, 1x7, 3x3 96 V; ``mixed5a``: 3x3/2 192 beside max pool."""

    def __init__(self, in_chs: int, *, conv_layer: LayerFactory = ConvBnAct) -> None:
        super().__init__()
        self.conv1a = conv_layer(in_chs, 32, 3, stride=2, padding=0)  # N x 32 x 149 x 149
        self.conv2a = conv_layer(32, 32, 3, padding=0)
        self.conv2b = conv_layer(32, 64, 3)  # N x 64 x 147 x 147
        self.mixed3a = GridReduction(
            64, {"conv": [(96, 3, 2)]}, pool_name="maxpool", pool_first=True, conv_layer=conv_layer
        )  # 160 x 73
        chs = self.mixed3a.out_chs
        self.mixed4a = Concat(
            chs,
            branch0=conv_chain(chs, [(64, 1), (96, 3, 1, 0)], conv_layer=conv_layer),
            branch1=conv_chain(chs, [(64, 1), (64, (1, 7)), (64, (7, 1)), (96, 3, 1, 0)], conv_layer=conv_layer),
        )  # N x 192 x 71 x 71
        self.mixed5a = GridReduction(
            self.mixed4a.out_chs, {"conv": [(192, 3, 2)]}, pool_name="maxpool", conv_layer=conv_layer
        )  # N x 384 x 35 x 35


class InceptionV4A(nn.Module):
    """Fig. 4 (35x35, 384 -> 384): ``branch0`` 1x1 96; ``branch1`` 1x1 64, 3x3 96; ``branch2`` 1x1 64, 3x3 96,
    3x3 96; ``branch3`` avg pool, 1x1 96."""

    def __init__(
        self,
        in_chs: int = 384,
        *,
        conv_layer: LayerFactory = ConvBnAct,
        pool_layer: LayerFactory = AVG_POOL_3X3_NO_PAD,
    ) -> None:
        super().__init__()
        self.branch0 = conv_layer(in_chs, 96, 1)
        self.branch1 = conv_chain(in_chs, [(64, 1), (96, 3)], conv_layer=conv_layer)
        self.branch2 = conv_chain(in_chs, [(64, 1), (96, 3), (96, 3)], conv_layer=conv_layer)
        self.branch3 = nn.Sequential(pool_layer(), conv_layer(in_chs, 96, 1))
        self.out_chs = concat_channels(in_chs, self.branch0, self.branch1, self.branch2, self.branch3)

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)]
        return torch.cat(branches, dim=1)  # N x 384 x 35 x 35


class InceptionV4B(nn.Module):
    """Fig. 5 (17x17, 1024 -> 1024): ``branch0`` 1x1 384; ``branch1`` 1x1 192, 1x7 224, 7x1 256; ``branch2``
    1x1 192, 7x1 192, 1x7 224, 7x1 224, 1x7 256; ``branch3`` avg pool, 1x1 128."""

    def __init__(
        self,
        in_chs: int = 1024,
        *,
        conv_layer: LayerFactory = ConvBnAct,
        pool_layer: LayerFactory = AVG_POOL_3X3_NO_PAD,
    ) -> None:
        super().__init__()
        pair = partial(asymmetric, n=7, conv_layer=conv_layer)
        self.branch0 = conv_layer(in_chs, 384, 1)
        self.branch1 = nn.Sequential(conv_layer(in_chs, 192, 1), *pair(192, 256, mid_chs=224))
        self.branch2 = nn.Sequential(
            conv_layer(in_chs, 192, 1),
            *pair(192, 224, mid_chs=192, transpose=True),
            *pair(224, 256, mid_chs=224, transpose=True),
        )
        self.branch3 = nn.Sequential(pool_layer(), conv_layer(in_chs, 128, 1))
        self.out_chs = concat_channels(in_chs, self.branch0, self.branch1, self.branch2, self.branch3)

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)]
        return torch.cat(branches, dim=1)  # N x 1024 x 17 x 17


class InceptionV4C(nn.Module):
    """Fig. 6 (8x8, 1536 -> 1536): ``branch0`` 1x1 256; ``branch1`` 1x1 384 then 1x3 and 3x1 (256 each) side by
    side; ``branch2`` 1x1 384, 3x1 448, 1x3 512, then the same pair; ``branch3`` avg pool, 1x1 256."""

    def __init__(
        self,
        in_chs: int = 1536,
        *,
        conv_layer: LayerFactory = ConvBnAct,
        pool_layer: LayerFactory = AVG_POOL_3X3_NO_PAD,
    ) -> None:
        super().__init__()
        bank = partial(expanded_asymmetric, n=3, conv_layer=conv_layer)
        self.branch0 = conv_layer(in_chs, 256, 1)
        self.branch1 = nn.Sequential(conv_layer(in_chs, 384, 1), bank(384, 256))
        self.branch2 = nn.Sequential(
            conv_layer(in_chs, 384, 1),
            *asymmetric(384, 512, 3, mid_chs=448, transpose=True, conv_layer=conv_layer),
            bank(512, 256),
        )
        self.branch3 = nn.Sequential(pool_layer(), conv_layer(in_chs, 256, 1))
        self.out_chs = concat_channels(in_chs, self.branch0, self.branch1, self.branch2, self.branch3)

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)]
        return torch.cat(branches, dim=1)  # N x 1536 x 8 x 8


def reduction_a(
    in_chs: int,
    *,
    k: int,
    l: int,  # noqa: E741 (the paper's name)
    m: int,
    n: int,
    conv_layer: LayerFactory = ConvBnAct,
) -> GridReduction:
    """Fig. 7 (35 -> 17): 3x3/2 ``n``; 1x1 ``k``, 3x3 ``l``, 3x3/2 ``m``; max pool. Table 1 gives (k, l, m, n):
    Inception-v4 (192, 224, 256, 384), Inception-ResNet-v1 (192, 192, 256, 384), -v2 (256, 256, 384, 384)."""
    convs = {"branch0": [(n, 3, 2)], "branch1": [(k, 1), (l, 3), (m, 3, 2)]}
    return GridReduction(in_chs, convs, pool_name="branch2", conv_layer=conv_layer)


def reduction_b(in_chs: int = 1024, *, conv_layer: LayerFactory = ConvBnAct) -> GridReduction:
    """Fig. 8 (17 -> 8): 1x1 192, 3x3/2 192; 1x1 256, 1x7 256, 7x1 320, 3x3/2 320; max pool."""
    convs = {"branch0": [(192, 1), (192, 3, 2)], "branch1": [(256, 1), (256, (1, 7)), (320, (7, 1)), (320, 3, 2)]}
    return GridReduction(in_chs, convs, pool_name="branch2", conv_layer=conv_layer)
