"""Parallel branches concatenated on the channel axis: the shape of every Inception module.

Szegedy et al. 2015 ("Going Deeper with Convolutions", Sec. 4): filters of several sizes see the same input
and their outputs are "concatenated into a single output vector forming the input of the next stage".
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor, nn

from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.types import LayerFactory, Size2

ConvSpec = tuple[int, Size2] | tuple[int, Size2, int] | tuple[int, Size2, int, Size2]
"""``(out_chs, kernel_size[, stride[, padding]])``; padding defaults to "same" at stride 1 and 0 ("valid")
at stride 2, as in the Inception-v3/v4 figures."""


def conv_chain(in_chs: int, specs: Sequence[ConvSpec], *, conv_layer: LayerFactory = ConvBnAct) -> nn.Module:
    """Convs one after another, each ``conv_layer(in, out, kernel, stride=..., padding=...)``: an
    ``nn.Sequential``, or the conv itself when there is one spec."""
    layers = []
    for spec in specs:
        out_chs, kernel_size, *rest = spec
        stride = rest[0] if rest else 1
        padding = rest[1] if len(rest) > 1 else (None if stride == 1 else 0)
        layers.append(conv_layer(in_chs, out_chs, kernel_size, stride=stride, padding=padding))
        in_chs = out_chs
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


def chain_out_chs(in_chs: int, specs: Sequence[ConvSpec]) -> int:
    """Output channels of :func:`conv_chain` (``in_chs`` for no specs)."""
    return specs[-1][0] if specs else in_chs


class Concat(nn.Module):
    """Run each named branch on the input and concatenate the outputs on the channel axis (in order).

    ``out_chs`` is the sum of the branches' output channels, given by the subclass or the caller.
    """

    def __init__(self, out_chs: int, **branches: nn.Module) -> None:
        super().__init__()
        self.out_chs = out_chs
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.children()], dim=1)  # N x out_chs x H' x W'


INCEPTION_CONV: LayerFactory = partial(ConvBnAct, norm_layer=partial(nn.BatchNorm2d, eps=1e-3))
"""Conv-BN-ReLU with the released Inception models' BN epsilon (TensorFlow's 0.001), which their weights
(torchvision's GoogLeNet and Inception-v3, timm's Inception-v4 and Inception-ResNet-v2) need."""
