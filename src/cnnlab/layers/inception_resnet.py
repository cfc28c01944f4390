"""Residual Inception blocks (Szegedy et al. 2017, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning", Sec. 3.2 and 3.3, Fig. 10-19).

Each block concatenates its branches, projects them with a linear 1x1 conv (with bias, no norm, no
activation) back to the input width and adds the result to the input: ``act(x + scale * proj(branches(x)))``.
Scaling the residual down "before adding it to the previous layer activation" (0.1 to 0.3, Fig. 20) kept
training stable when there were more than 1000 filters. ``plain=True`` leaves the addition out:
``act(scale * proj(branches(x)))``, an Inception module of the same parameters and (but for the addition) MACs,
the non-residual twin with which Sec. 5 compares (there: Inception-v3 against Inception-ResNet-v1).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from cnnlab.layers.branches import Concat, ConvSpec, conv_chain
from cnnlab.layers.conv_bn_act import ConvBnAct, create_act
from cnnlab.layers.grid_reduction import GridReduction
from cnnlab.layers.types import LayerFactory

BranchSpecs = Sequence[Sequence[ConvSpec]]
"""The conv specs of each branch of a block, left to right (``branch0``, ``branch1``, ...)."""

BLOCK_A_V1: BranchSpecs = (((32, 1),), ((32, 1), (32, 3)), ((32, 1), (32, 3), (32, 3)))
"""Inception-ResNet-A of v1 (Fig. 10, 35x35, 256 channels): 1x1 32; 1x1 32, 3x3 32; 1x1 32, 3x3 32, 3x3 32."""
BLOCK_A_V2: BranchSpecs = (((32, 1),), ((32, 1), (32, 3)), ((32, 1), (48, 3), (64, 3)))
"""Inception-ResNet-A of v2 (Fig. 16, 320 channels as released): the third branch widens to 48, 64."""
BLOCK_B_V1: BranchSpecs = (((128, 1),), ((128, 1), (128, (1, 7)), (128, (7, 1))))
"""Inception-ResNet-B of v1 (Fig. 11, 17x17, 896 channels): 1x1 128; 1x1 128, 1x7 128, 7x1 128."""
BLOCK_B_V2: BranchSpecs = (((192, 1),), ((128, 1), (160, (1, 7)), (192, (7, 1))))
"""Inception-ResNet-B of v2 (Fig. 17, 1088 channels): 1x1 192; 1x1 128, 1x7 160, 7x1 192."""
BLOCK_C_V1: BranchSpecs = (((192, 1),), ((192, 1), (192, (1, 3)), (192, (3, 1))))
"""Inception-ResNet-C of v1 (Fig. 13, 8x8, 1792 channels): 1x1 192; 1x1 192, 1x3 192, 3x1 192."""
BLOCK_C_V2: BranchSpecs = (((192, 1),), ((192, 1), (224, (1, 3)), (256, (3, 1))))
"""Inception-ResNet-C of v2 (Fig. 19, 2080 channels): 1x1 192; 1x1 192, 1x3 224, 3x1 256."""


class InceptionResNetBlock(nn.Module):
    """``act(x + scale * proj(cat(branch0(x), branch1(x), ...)))``; without the ``x +`` when ``plain``.

    Args:
        in_chs: input (and output) channels.
        branches: conv specs of each branch (``branch0``, ``branch1``, ...), such as ``BLOCK_A_V2``.
        scale: the residual's scaling, applied before the addition (the released models' 0.17, 0.10, 0.20 for
            the A, B, C blocks).
        act_layer: the activation after the addition; ``None`` leaves it out (the last block of
            Inception-ResNet-v2 as released).
        plain: no shortcut (``shortcut`` is ``None``): the same branches and projection without the residual
            connection, the twin that shows what the connection does (Sec. 5). Not in the paper, whose
            non-residual nets (Inception-v3, -v4) have no linear projection after the concatenation.
    """

    def __init__(
        self,
        in_chs: int,
        branches: BranchSpecs,
        *,
        scale: float = 1.0,
        conv_layer: LayerFactory = ConvBnAct,
        act_layer: LayerFactory | None = nn.ReLU,
        plain: bool = False,
    ) -> None:
        super().__init__()
        self.branches = Concat(
            in_chs, **{f"branch{i}": conv_chain(in_chs, b, conv_layer=conv_layer) for i, b in enumerate(branches)}
        )
        self.proj = nn.Conv2d(self.branches.out_chs, in_chs, 1)  # linear: no norm, no activation
        self.scale = scale
        self.shortcut = None if plain else nn.Identity()  # the residual connection (no parameters)
        self.act = create_act(act_layer) if act_layer is not None else nn.Identity()
        self.out_chs = in_chs

    def forward(self, x: Tensor) -> Tensor:
        out = self.scale * self.proj(self.branches(x))  # N x in_chs x H x W
        if self.shortcut is not None:  # a plain block has none
            out = self.shortcut(x) + out
        return self.act(out)


def inception_resnet_reduction_b(
    in_chs: int, widths: tuple[int, int, int, int, int], *, conv_layer: LayerFactory = ConvBnAct
) -> GridReduction:
    """Reduction-B of Inception-ResNet (17 -> 8; v1 Fig. 12, v2 Fig. 18), ``widths`` = (r, a, b, c, d): 1x1 r,
    3x3/2 a; 1x1 r, 3x3/2 b; 1x1 r, 3x3 c, 3x3/2 d; max pool. (256, 384, 256, 256, 256) in v1,
    (256, 384, 288, 288, 320) in v2 as released."""
    r, a, b, c, d = widths
    convs = {"branch0": [(r, 1), (a, 3, 2)], "branch1": [(r, 1), (b, 3, 2)], "branch2": [(r, 1), (c, 3), (d, 3, 2)]}
    return GridReduction(in_chs, convs, pool_name="branch3", conv_layer=conv_layer)


class InceptionResNetV1Stem(nn.Sequential):
    """Fig. 14 (299 -> 35x35x256): 3x3/2 32 V, 3x3 32 V, 3x3 64, 3x3/2 max pool V, 1x1 80, 3x3 192 V,
    3x3/2 256 V."""

    def __init__(self, in_chs: int, *, conv_layer: LayerFactory = ConvBnAct) -> None:
        super().__init__()
        self.conv1a = conv_layer(in_chs, 32, 3, stride=2, padding=0)
        self.conv2a = conv_layer(32, 32, 3, padding=0)
        self.conv2b = conv_layer(32, 64, 3)
        self.pool = nn.MaxPool2d(3, stride=2)  # N x 64 x 73 x 73
        self.conv3b = conv_layer(64, 80, 1)
        self.conv4a = conv_layer(80, 192, 3, padding=0)
        self.conv4b = conv_layer(192, 256, 3, stride=2, padding=0)  # N x 256 x 35 x 35
