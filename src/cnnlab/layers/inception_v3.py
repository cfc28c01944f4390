"""The Inception-v3 modules (Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision").

Three module types, one per grid size (Table 1), named after the paper's figures:

* :class:`InceptionV3A` (Fig. 5, 35x35): the 5x5 factorised into two 3x3 (``branch3x3dbl``);
* :class:`InceptionV3B` (Fig. 6, 17x17): n x n factorised into 1 x n and n x 1, n = 7;
* :class:`InceptionV3C` (Fig. 7, 8x8): the asymmetric pair side by side ("expanded filter bank").

Widths are those of the released model (torchvision's ``InceptionA``, ``InceptionC``, ``InceptionE``);
like it, the 35x35 module also keeps a plain 5x5 branch, which Fig. 5 does not have. The pool branches
average with zero padding counted (torchvision's choice; TensorFlow's "SAME" pooling leaves it out).
:class:`InceptionV3Stem` is the stem of Table 1 as released (conv 3x3/2, 3x3, 3x3 padded, pool, 1x1 80,
3x3 192, pool), which Inception-ResNet-v2 shares.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from cnnlab.layers.branches import concat_channels, conv_chain
from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.factorized import asymmetric, expanded_asymmetric, stacked_3x3
from cnnlab.layers.grid_reduction import MAX_POOL_3X3_S2
from cnnlab.layers.types import LayerFactory

AVG_POOL_3X3: LayerFactory = partial(nn.AvgPool2d, 3, stride=1, padding=1)
"""The pool of the pool branches: 3x3 average, stride 1, size kept."""


class InceptionV3Stem(nn.Sequential):
    """Input to the 35x35 grid (299 -> 35): ``conv1a`` 3x3/2 32, ``conv2a`` 3x3 32, ``conv2b`` 3x3 64 padded,
    ``pool1`` 3x3/2, ``conv3b`` 1x1 80, ``conv4a`` 3x3 192, ``pool2`` 3x3/2; unpadded ("valid") elsewhere."""

    def __init__(self, in_chs: int, *, conv_layer: LayerFactory = ConvBnAct) -> None:
        super().__init__()
        self.conv1a = conv_layer(in_chs, 32, 3, stride=2, padding=0)  # N x 32 x 149 x 149
        self.conv2a = conv_layer(32, 32, 3, padding=0)  # N x 32 x 147 x 147
        self.conv2b = conv_layer(32, 64, 3)
        self.pool1 = MAX_POOL_3X3_S2()  # N x 64 x 73 x 73
        self.conv3b = conv_layer(64, 80, 1)
        self.conv4a = conv_layer(80, 192, 3, padding=0)  # N x 192 x 71 x 71
        self.pool2 = MAX_POOL_3X3_S2()  # N x 192 x 35 x 35


class InceptionV3A(nn.Module):
    """Fig. 5 (35x35): ``branch1x1`` 64; ``branch5x5`` 1x1 48, 5x5 64; ``branch3x3dbl`` 1x1 64 and a 5x5 field
    as two 3x3 (96, 96); ``branch_pool`` average pool, 1x1 ``pool_features``. ``224 + pool_features`` out."""

    def __init__(
        self,
        in_chs: int,
        pool_features: int,
        *,
        conv_layer: LayerFactory = ConvBnAct,
        pool_layer: LayerFactory = AVG_POOL_3X3,
    ) -> None:
        super().__init__()
        self.branch1x1 = conv_layer(in_chs, 64, 1)
        self.branch5x5 = conv_chain(in_chs, [(48, 1), (64, 5)], conv_layer=conv_layer)
        self.branch3x3dbl = nn.Sequential(conv_layer(in_chs, 64, 1), *stacked_3x3(64, 96, 5, conv_layer=conv_layer))
        self.branch_pool = nn.Sequential(pool_layer(), conv_layer(in_chs, pool_features, 1))
        self.out_chs = concat_channels(in_chs, self.branch1x1, self.branch5x5, self.branch3x3dbl, self.branch_pool)

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1x1(x), self.branch5x5(x), self.branch3x3dbl(x), self.branch_pool(x)]
        return torch.cat(branches, dim=1)  # N x (224 + pool_features) x 35 x 35


class InceptionV3B(nn.Module):
    """Fig. 6 (17x17), n = 7: ``branch1x1`` 192; ``branch7x7`` 1x1 then 1x7, 7x1; ``branch7x7dbl`` 1x1 then
    two 7x1, 1x7 pairs; ``branch_pool``. Inner width ``c7`` (128, 160, 160, 192 in the four modules); 768 out."""

    def __init__(
        self,
        in_chs: int,
        c7: int,
        *,
        conv_layer: LayerFactory = ConvBnAct,
        pool_layer: LayerFactory = AVG_POOL_3X3,
    ) -> None:
        super().__init__()
        pair = partial(asymmetric, n=7, mid_chs=c7, conv_layer=conv_layer)
        self.branch1x1 = conv_layer(in_chs, 192, 1)
        self.branch7x7 = nn.Sequential(conv_layer(in_chs, c7, 1), *pair(c7, 192))
        self.branch7x7dbl = nn.Sequential(
            conv_layer(in_chs, c7, 1), *pair(c7, c7, transpose=True), *pair(c7, 192, transpose=True)
        )
        self.branch_pool = nn.Sequential(pool_layer(), conv_layer(in_chs, 192, 1))
        self.out_chs = concat_channels(in_chs, self.branch1x1, self.branch7x7, self.branch7x7dbl, self.branch_pool)

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1x1(x), self.branch7x7(x), self.branch7x7dbl(x), self.branch_pool(x)]
        return torch.cat(branches, dim=1)  # N x 768 x 17 x 17


class InceptionV3C(nn.Module):
    """Fig. 7 (8x8): ``branch1x1`` 320; ``branch3x3`` 1x1 384 then 1x3 and 3x1 side by side (384 each);
    ``branch3x3dbl`` 1x1 448, 3x3 384, then the same pair; ``branch_pool`` 192. 2048 out."""

    def __init__(
        self,
        in_chs: int,
        *,
        conv_layer: LayerFactory = ConvBnAct,
        pool_layer: LayerFactory = AVG_POOL_3X3,
    ) -> None:
        super().__init__()
        bank = partial(expanded_asymmetric, n=3, conv_layer=conv_layer)
        self.branch1x1 = conv_layer(in_chs, 320, 1)
        self.branch3x3 = nn.Sequential(conv_layer(in_chs, 384, 1), bank(384, 384))
        self.branch3x3dbl = nn.Sequential(conv_layer(in_chs, 448, 1), conv_layer(448, 384, 3), bank(384, 384))
        self.branch_pool = nn.Sequential(pool_layer(), conv_layer(in_chs, 192, 1))
        self.out_chs = concat_channels(in_chs, self.branch1x1, self.branch3x3, self.branch3x3dbl, self.branch_pool)

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1x1(x), self.branch3x3(x), self.branch3x3dbl(x), self.branch_pool(x)]
        return torch.cat(branches, dim=1)  # N x 2048 x 8 x 8
