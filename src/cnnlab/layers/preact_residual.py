"""Pre-activation residual blocks (He et al. 2016b, "Identity Mappings in Deep Residual Networks", Fig. 4e).

BN and ReLU move in front of each conv and nothing follows the addition, so the shortcut path from any
block to any later one is a pure identity. A network of these blocks needs a final BN-ReLU before pooling
(the model adds it when ``block.pre_activation`` is true).

Departures: the shortcut always reads the block's raw input (the paper's code feeds the pre-activated input
to both paths in the very first block); a projection shortcut is a 1x1 conv with bias and no BN, as in the
paper's code, since the sum it joins is not normalised.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError
from cnnlab.layers.conv_bn_act import create_act, same_padding
from cnnlab.layers.residual import ResidualBlock, StrideIn, bottleneck_width, split_stride
from cnnlab.layers.shortcut import ShortcutOption
from cnnlab.layers.types import LayerFactory


class BnActConv(nn.Module):
    """``norm -> act -> conv``: the pre-activation ordering."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        norm_layer: LayerFactory = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        self.bn = norm_layer(in_chs)
        self.act = create_act(act_layer)
        self.conv = nn.Conv2d(
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
    """BN-ReLU-3x3, BN-ReLU-3x3, then the addition and nothing after it."""

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
        norm_layer: LayerFactory = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ModelArgumentError("PreActBasicBlock has no groups or base_width; use PreActBottleneck")
        out_chs = planes * self.expansion
        layer = {"norm_layer": norm_layer, "act_layer": act_layer, "dilation": dilation}
        self.conv1 = BnActConv(in_chs, planes, 3, stride=stride, **layer)
        self.conv2 = BnActConv(planes, out_chs, 3, **layer)
        self._init_merge(
            in_chs,
            out_chs,
            stride=stride,
            shortcut=shortcut,
            plain=plain,
            attn_layer=attn_layer,
            norm_layer=None,
            act_layer=None,
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return self.merge(out, x)


class PreActBottleneck(ResidualBlock):
    """BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1 (x4), then the addition (the paper's ResNet-164 and -1001)."""

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
        norm_layer: LayerFactory = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        width = bottleneck_width(planes, groups=groups, base_width=base_width)
        out_chs = planes * self.expansion
        stride_1x1, stride_3x3 = split_stride(stride, stride_in)
        layer = {"norm_layer": norm_layer, "act_layer": act_layer}
        self.conv1 = BnActConv(in_chs, width, 1, stride=stride_1x1, **layer)
        self.conv2 = BnActConv(width, width, 3, stride=stride_3x3, dilation=dilation, groups=groups, **layer)
        self.conv3 = BnActConv(width, out_chs, 1, **layer)
        self._init_merge(
            in_chs,
            out_chs,
            stride=stride,
            shortcut=shortcut,
            plain=plain,
            attn_layer=attn_layer,
            norm_layer=None,
            act_layer=None,
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv3(self.conv2(self.conv1(x)))
        return self.merge(out, x)
