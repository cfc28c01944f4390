"""Pre-activation residual blocks (He et al. 2016b, "Identity Mappings in Deep Residual Networks", Fig. 4e).

BN and ReLU move in front of each conv and nothing follows the addition, so the shortcut path from any
block to any later one is a pure identity. A network of these blocks needs a final BN-ReLU before pooling
(the model adds it when ``block.pre_activation`` is true).

Departures: the shortcut always reads the block's raw input (the paper's code feeds the pre-activated input
to both paths in the very first block); a projection shortcut is a 1x1 conv with bias and no BN, as in the
paper's code, since the sum it joins is not normalised.

``zero_init_last`` zeroes the branch's last *conv* (as timm's pre-activation blocks do), not its last BN: that BN
is followed by a ReLU, whose gradient at exactly 0 is 0 in PyTorch, so a zero scale there would never move.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from cnnlab.layers.conv_bn_act import check_conv, create_act, same_padding
from cnnlab.layers.residual import ResidualBlock, StrideIn, bottleneck_width, check_no_groups, split_stride
from cnnlab.layers.shortcut import ShortcutOption, make_shortcut
from cnnlab.layers.types import LayerFactory


class BnActConv(nn.Module):
    """``norm -> act -> conv``: the pre-activation ordering. ``conv_layer`` is the conv's class, called like
    ``nn.Conv2d`` (for example a deformable conv); ``norm_layer=None`` leaves the norm out."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        norm_layer: LayerFactory | None = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
        conv_layer: LayerFactory = nn.Conv2d,
    ) -> None:
        super().__init__()
        check_conv(in_chs, out_chs, kernel_size, dilation=dilation, groups=groups, layer="BnActConv")
        self.bn = norm_layer(in_chs) if norm_layer is not None else nn.Identity()
        self.act = create_act(act_layer)
        self.conv = conv_layer(
            in_chs,
            out_chs,
            kernel_size,
            stride=stride,
            padding=same_padding(kernel_size, dilation),
            dilation=dilation,
            groups=groups,
            bias=False,
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.act(self.bn(x)))


class PreActBasicBlock(ResidualBlock):
    """BN-ReLU-3x3, BN-ReLU-3x3, then the addition and nothing after it: ``attn(F(x)) + shortcut(x)``.

    Arguments: those of :class:`~cnnlab.layers.residual.BasicBlock`; a projection shortcut has no norm.
    """

    expansion: ClassVar[int] = 1
    pre_activation: ClassVar[bool] = True

    def __init__(
        self,
        in_chs: int,
        planes: int,
        *,
        stride: int = 1,
        shortcut: ShortcutOption = "B",
        plain: bool = False,
        attn_layer: LayerFactory | None = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        stride_in: StrideIn = "3x3",
        norm_layer: LayerFactory | None = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
        conv_layer: LayerFactory = nn.Conv2d,
    ) -> None:
        super().__init__()
        check_no_groups(groups, base_width, "PreActBasicBlock")
        self.in_chs, self.out_chs, self.stride = in_chs, planes * self.expansion, stride
        layer = {"dilation": dilation, "norm_layer": norm_layer, "act_layer": act_layer, "conv_layer": conv_layer}
        self.conv1 = BnActConv(in_chs, planes, 3, stride=stride, **layer)
        self.conv2 = BnActConv(planes, self.out_chs, 3, **layer)
        self.attn = attn_layer(self.out_chs) if attn_layer is not None else nn.Identity()
        self.shortcut = None if plain else make_shortcut(shortcut, in_chs, self.out_chs, stride=stride, norm_layer=None)
        self.act = nn.Identity()  # nothing after the addition

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.conv.weight)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)  # BN-ReLU-3x3; N x planes x H/s x W/s
        out = self.conv2(out)  # BN-ReLU-3x3
        out = self.attn(out)
        if self.shortcut is not None:  # a plain block has none
            out = out + self.shortcut(x)
        return self.act(out)


class PreActBottleneck(ResidualBlock):
    """BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1 (x4), then the addition (the paper's ResNet-164 and -1001).

    Arguments: those of :class:`~cnnlab.layers.residual.Bottleneck`; a projection shortcut has no norm.
    """

    expansion: ClassVar[int] = 4
    pre_activation: ClassVar[bool] = True

    def __init__(
        self,
        in_chs: int,
        planes: int,
        *,
        stride: int = 1,
        shortcut: ShortcutOption = "B",
        plain: bool = False,
        attn_layer: LayerFactory | None = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        stride_in: StrideIn = "3x3",
        norm_layer: LayerFactory | None = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
        conv_layer: LayerFactory = nn.Conv2d,
    ) -> None:
        super().__init__()
        self.in_chs, self.out_chs, self.stride = in_chs, planes * self.expansion, stride
        width = bottleneck_width(planes, groups=groups, base_width=base_width)
        stride_1x1, stride_3x3 = split_stride(stride, stride_in)
        layer = {"norm_layer": norm_layer, "act_layer": act_layer}
        self.conv1 = BnActConv(in_chs, width, 1, stride=stride_1x1, **layer)
        self.conv2 = BnActConv(
            width, width, 3, stride=stride_3x3, dilation=dilation, groups=groups, conv_layer=conv_layer, **layer
        )
        self.conv3 = BnActConv(width, self.out_chs, 1, **layer)
        self.attn = attn_layer(self.out_chs) if attn_layer is not None else nn.Identity()
        self.shortcut = None if plain else make_shortcut(shortcut, in_chs, self.out_chs, stride=stride, norm_layer=None)
        self.act = nn.Identity()  # nothing after the addition

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.conv.weight)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)  # BN-ReLU-1x1 reduce
        out = self.conv2(out)  # BN-ReLU-3x3; N x width x H/s x W/s
        out = self.conv3(out)  # BN-ReLU-1x1 restore; N x 4 planes x H/s x W/s
        out = self.attn(out)
        if self.shortcut is not None:  # a plain block has none
            out = out + self.shortcut(x)
        return self.act(out)
