"""The Inception module of GoogLeNet (Szegedy et al. 2015, "Going Deeper with Convolutions", Fig. 2, Table 1).

Naive form (Fig. 2a): 1x1, 3x3 and 5x5 convs and a 3x3 max pool side by side, concatenated. The pool passes
all input channels through, so the width grows at every module, and the 5x5 on a wide input is expensive.
Dimension-reduced form (Fig. 2b): a 1x1 "reduce" conv before the 3x3 and the 5x5, and a 1x1 "pool proj"
after the pool. The widths are named after the columns of Table 1.

One kernel size (``kernel_size=3``), the control of the parallel_kernels experiment and not a module of the paper:
every branch's filter is a 3x3, the 1x1 reductions before the 3x3 and the "5x5" kept (the bottleneck is another
claim), the 1x1 branch a 3x3 conv and the pool projection a 3x3 conv in place of the pool and its 1x1. Sec. 4 argues
for the several sizes: the information "should be processed at various scales and then aggregated".
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import torch
from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError
from cnnlab.layers.branches import concat_channels, conv_chain
from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.types import LayerFactory


@dataclass(frozen=True)
class InceptionV1Widths:
    """One row of Table 1: output channels of each conv of the module."""

    c1x1: int  # "#1x1"
    c3x3_reduce: int  # "#3x3 reduce"
    c3x3: int  # "#3x3"
    c5x5_reduce: int  # "#5x5 reduce"
    c5x5: int  # "#5x5"
    pool_proj: int  # "pool proj"

    @property
    def out_chs(self) -> int:
        """Output channels of the dimension-reduced module."""
        return self.c1x1 + self.c3x3 + self.c5x5 + self.pool_proj

    def scaled(self, width_mult: float) -> InceptionV1Widths:
        """Every width times ``width_mult``, rounded (at least 1)."""
        return InceptionV1Widths(*(max(1, round(w * width_mult)) for w in astuple(self)))


GOOGLENET_3A = InceptionV1Widths(64, 96, 128, 16, 32, 32)
"""Table 1, inception (3a): on 28x28x192, output 256 channels."""

GOOGLENET_WIDTHS: dict[str, InceptionV1Widths] = {
    "3a": GOOGLENET_3A,
    "3b": InceptionV1Widths(128, 128, 192, 32, 96, 64),
    "4a": InceptionV1Widths(192, 96, 208, 16, 48, 64),
    "4b": InceptionV1Widths(160, 112, 224, 24, 64, 64),
    "4c": InceptionV1Widths(128, 128, 256, 24, 64, 64),
    "4d": InceptionV1Widths(112, 144, 288, 32, 64, 64),
    "4e": InceptionV1Widths(256, 160, 320, 32, 128, 128),
    "5a": InceptionV1Widths(256, 160, 320, 32, 128, 128),
    "5b": InceptionV1Widths(384, 192, 384, 48, 128, 128),
}
"""All nine Inception modules of Table 1."""


class InceptionV1(nn.Module):
    """An Inception module: ``branch1x1``, ``branch3x3``, ``branch5x5``, ``branch_pool`` concatenated.

    Args:
        in_chs: input channels.
        widths: the module's row of Table 1.
        naive: Fig. 2a: no reductions and no pool projection (the reduce and proj widths are ignored;
            the pool branch keeps all ``in_chs`` channels).
        kernel_5x5: the kernel of the "5x5" branch; torchvision's GoogLeNet uses 3 there (a departure
            kept for its weights).
        kernel_size: one size for every branch's filter (``branch1x1``, the 3x3, the "5x5", and a conv in place
            of the pool and its projection), the reductions kept; ``None``: the paper's 1x1, 3x3, 5x5 and pool.
            Not with ``naive``.
        conv_layer: the conv unit (conv-BN-ReLU by default; the paper has no BN: pass
            ``partial(ConvBnAct, norm_layer=None)``).
    """

    def __init__(
        self,
        in_chs: int,
        widths: InceptionV1Widths,
        *,
        naive: bool = False,
        kernel_5x5: int = 5,
        kernel_size: int | None = None,  # the paper's several sizes; 3: one size (the parallel_kernels control)
        conv_layer: LayerFactory = ConvBnAct,
    ) -> None:
        super().__init__()
        if naive and kernel_size is not None:
            raise ModelArgumentError("kernel_size gives the reduced module one filter size; the naive module has none")
        w = widths
        k1, k3, k5 = (1, 3, kernel_5x5) if kernel_size is None else (kernel_size,) * 3
        pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.branch1x1 = conv_layer(in_chs, w.c1x1, k1)
        if naive:  # Fig. 2a
            self.branch3x3 = conv_layer(in_chs, w.c3x3, k3)
            self.branch5x5 = conv_layer(in_chs, w.c5x5, k5)
            self.branch_pool = pool
        else:  # Fig. 2b: 1x1 reductions before the 3x3 and the 5x5, a 1x1 projection after the pool
            self.branch3x3 = conv_chain(in_chs, [(w.c3x3_reduce, 1), (w.c3x3, k3)], conv_layer=conv_layer)
            self.branch5x5 = conv_chain(in_chs, [(w.c5x5_reduce, 1), (w.c5x5, k5)], conv_layer=conv_layer)
            self.branch_pool = (
                nn.Sequential(pool, conv_layer(in_chs, w.pool_proj, 1))
                if kernel_size is None
                else conv_layer(in_chs, w.pool_proj, kernel_size)  # one size: a conv in place of pool and 1x1
            )
        self.out_chs = concat_channels(in_chs, self.branch1x1, self.branch3x3, self.branch5x5, self.branch_pool)
        self.widths = widths
        self.naive = naive

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1x1(x), self.branch3x3(x), self.branch5x5(x), self.branch_pool(x)]
        return torch.cat(branches, dim=1)  # N x out_chs x H x W
