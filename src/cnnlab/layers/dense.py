"""Dense connectivity (Huang et al. 2017, "Densely Connected Convolutional Networks", Sec. 3).

Inside a dense block, layer l receives the concatenation of the block input and every earlier layer's output
and adds ``growth_rate`` (k) channels of its own, so a block of L layers outputs ``in + L * k`` channels.
The DenseNet-B layer is BN-ReLU-1x1 conv to ``bn_size * k`` (4k) channels, then BN-ReLU-3x3 conv to k.
Between blocks, a transition layer (BN-ReLU-1x1 conv, 2x2 average pool) halves the resolution and, in
DenseNet-C, compresses the channels by ``theta`` (0.5 in DenseNet-BC).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from cnnlab.errors import check_drop_rate
from cnnlab.layers.preact_residual import BnActConv
from cnnlab.layers.types import LayerFactory


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 (``bn_size * growth_rate``), BN-ReLU-3x3 (``growth_rate``), concatenated to the input.
    ``bn_size=0`` leaves the bottleneck out (the plain DenseNet layer, a single BN-ReLU-3x3)."""

    def __init__(
        self,
        in_chs: int,
        growth_rate: int,
        *,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        norm_layer: LayerFactory = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        layer = {"norm_layer": norm_layer, "act_layer": act_layer}
        mid = bn_size * growth_rate if bn_size else in_chs
        self.conv1 = BnActConv(in_chs, mid, 1, **layer) if bn_size else nn.Identity()
        self.conv2 = BnActConv(mid, growth_rate, 3, **layer)
        self.drop = nn.Dropout(check_drop_rate("DenseLayer drop_rate", drop_rate))
        self.out_chs = in_chs + growth_rate

    def forward(self, x: Tensor) -> Tensor:
        new = self.drop(self.conv2(self.conv1(x)))  # N x k x H x W
        return torch.cat((x, new), 1)


class DenseBlock(nn.Sequential):
    """``num_layers`` dense layers named ``layer1``, ``layer2``, ...: ``in_chs + num_layers * growth_rate``
    channels out."""

    def __init__(self, in_chs: int, num_layers: int, growth_rate: int, **layer_kwargs: object) -> None:
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"layer{i + 1}", DenseLayer(in_chs + i * growth_rate, growth_rate, **layer_kwargs))
        self.out_chs = in_chs + num_layers * growth_rate


class Transition(nn.Module):
    """BN-ReLU-1x1 conv to ``floor(theta * in_chs)`` channels, then a 2x2 average pool (stride 2)."""

    def __init__(
        self,
        in_chs: int,
        *,
        theta: float = 0.5,  # compression; 1.0 is the uncompressed DenseNet
        norm_layer: LayerFactory = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        self.out_chs = math.floor(theta * in_chs)
        self.conv = BnActConv(in_chs, self.out_chs, 1, norm_layer=norm_layer, act_layer=act_layer)
        self.pool = nn.AvgPool2d(2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.conv(x))
