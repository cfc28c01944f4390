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

from cnnlab.layers.conv_bn_act import check_conv, create_act, same_padding
from cnnlab.layers.residual import BranchSpec, ResidualBlock, bottleneck_width, check_no_groups, split_stride
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
        check_conv(in_chs, out_chs, kernel_size, dilation=dilation, groups=groups, layer="BnActConv")
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

    def build_branch(self, spec: BranchSpec) -> None:
        check_no_groups(spec, "PreActBasicBlock")
        layer = {"norm_layer": spec.norm_layer, "act_layer": spec.act_layer, "dilation": spec.dilation}
        self.conv1 = BnActConv(spec.in_chs, spec.planes, 3, stride=spec.stride, **layer)
        self.conv2 = BnActConv(spec.planes, spec.out_chs, 3, **layer)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return self.merge(out, x)


class PreActBottleneck(ResidualBlock):
    """BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1 (x4), then the addition (the paper's ResNet-164 and -1001)."""

    expansion: ClassVar[int] = 4
    pre_activation: ClassVar[bool] = True

    def build_branch(self, spec: BranchSpec) -> None:
        width = bottleneck_width(spec.planes, groups=spec.groups, base_width=spec.base_width)
        stride_1x1, stride_3x3 = split_stride(spec.stride, spec.stride_in)
        layer = {"norm_layer": spec.norm_layer, "act_layer": spec.act_layer}
        self.conv1 = BnActConv(spec.in_chs, width, 1, stride=stride_1x1, **layer)
        self.conv2 = BnActConv(width, width, 3, stride=stride_3x3, dilation=spec.dilation, groups=spec.groups, **layer)
        self.conv3 = BnActConv(width, spec.out_chs, 1, **layer)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv3(self.conv2(self.conv1(x)))
        return self.merge(out, x)
