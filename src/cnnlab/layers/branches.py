"""Parallel branches concatenated on the channel axis: the shape of every Inception module.

Szegedy et al. 2015 ("Going Deeper with Convolutions", Sec. 4): filters of several sizes see the same input
and their outputs are "concatenated into a single output vector forming the input of the next stage".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

import torch
from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError
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


def output_channels(module: nn.Module, in_chs: int) -> int:
    """The channels that ``module`` outputs for ``in_chs`` input channels: its ``out_chs`` (every block of
    :mod:`cnnlab.layers` has one), a conv's ``out_channels``, the last width of a sequence; the other layers of
    ``torch.nn`` (pools, norms, activations) keep the width. Any other module is an error, never a guess."""
    for attr in ("out_chs", "out_channels", "out_features"):
        chs = getattr(module, attr, None)
        if isinstance(chs, int):
            return chs
    if isinstance(module, nn.Sequential):
        for layer in module:
            in_chs = output_channels(layer, in_chs)
        return in_chs
    if type(module).__module__.startswith("torch.nn."):
        return in_chs
    name = type(module).__name__
    raise ModelArgumentError(f"cannot tell the output channels of {name}: give it an out_chs attribute")


Block = nn.Module | Callable[[int], nn.Module]
"""A module, or a function of its input channels that builds one (``partial(InceptionV3A, pool_features=32)``)."""


def chain(in_chs: int, blocks: Sequence[Block] | Mapping[str, Block]) -> nn.Sequential:
    """Blocks one after another, named "0", "1", ... or by the mapping's keys. A factory is called with the
    output channels of the blocks before it (``in_chs`` for the first); a module is used as it is. The widths
    between blocks are derived, never typed twice."""
    named = blocks.items() if isinstance(blocks, Mapping) else ((str(i), b) for i, b in enumerate(blocks))
    seq = nn.Sequential()
    for name, block in named:
        module = block if isinstance(block, nn.Module) else block(in_chs)
        seq.add_module(name, module)
        in_chs = output_channels(module, in_chs)
    return seq


def concat_channels(in_chs: int, *branches: nn.Module) -> int:
    """The channels of the branches' outputs on ``in_chs`` channels, concatenated (:func:`output_channels`)."""
    return sum(output_channels(branch, in_chs) for branch in branches)


class Concat(nn.Module):
    """Run each named branch on the input and concatenate the outputs on the channel axis, in the order given.

    The generic form, for modules whose branches are data (a stem's mixed layer, a grid reduction's conv specs,
    an Inception-ResNet block's branch specs); the paper's modules name their branches in their own ``forward``
    (:class:`~cnnlab.layers.inception_v1.InceptionV1`). Only the branches given here join the output, whatever
    other submodule is added later. ``out_chs`` is the sum of the branches' output channels.
    """

    def __init__(self, in_chs: int, **branches: nn.Module) -> None:
        super().__init__()
        self.out_chs = concat_channels(in_chs, *branches.values())
        self.branch_names = tuple(branches)
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([getattr(self, name)(x) for name in self.branch_names], dim=1)  # N x out_chs x H' x W'


INCEPTION_CONV: LayerFactory = partial(ConvBnAct, norm_layer=partial(nn.BatchNorm2d, eps=1e-3))
"""Conv-BN-ReLU with the released Inception models' BN epsilon (TensorFlow's 0.001), which their weights
(torchvision's GoogLeNet and Inception-v3, timm's Inception-v4 and Inception-ResNet-v2) need."""
