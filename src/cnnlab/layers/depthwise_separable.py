"""Depthwise-separable convolution (Howard et al. 2017, "MobileNets", Sec. 3.1, Fig. 3).

A standard k x k conv from M to N channels is factored into a depthwise k x k conv (one filter per input
channel, ``groups=M``) and a pointwise 1x1 conv that mixes the channels. The cost falls from
``k*k*M*N*H*W`` to ``k*k*M*H*W + M*N*H*W`` multiply-adds: a ratio of ``1/N + 1/k^2`` (about 1/9 for 3x3).
Each of the two convs is followed by batch norm and ReLU, as in the paper's Fig. 3.

:class:`SeparableConv2d` is the same factorisation as a drop-in for ``nn.Conv2d`` (it takes a conv's arguments),
with nothing between the two convs, as in Xception (Chollet 2017, Sec. 4.7: no non-linearity between them
trains best): a block that receives its conv class (``conv_layer=SeparableConv2d``) becomes its separable twin.
"""

from __future__ import annotations

from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError
from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.types import LayerFactory, Size2


class DepthwiseSeparableConv(nn.Module):
    """``depthwise`` (k x k, groups = in_chs, BN, act unless ``dw_act=False``) then ``pointwise`` (1x1, BN, act)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        norm_layer: LayerFactory = nn.BatchNorm2d,
        act_layer: LayerFactory | None = nn.ReLU,
        dw_act: bool = True,  # MobileNet v1 activates both convs; ShuffleNet v2 leaves the depthwise linear
    ) -> None:
        super().__init__()
        self.in_chs, self.out_chs = in_chs, out_chs
        self.depthwise = ConvBnAct(
            in_chs,
            in_chs,
            kernel_size,
            stride=stride,
            dilation=dilation,
            groups=in_chs,
            norm_layer=norm_layer,
            act_layer=act_layer if dw_act else None,
        )
        self.pointwise = ConvBnAct(in_chs, out_chs, 1, norm_layer=norm_layer, act_layer=act_layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class SeparableConv2d(nn.Module):
    """A depthwise ``kernel_size`` conv (one filter per input channel) then a pointwise 1x1, called like
    ``nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups=1, bias)``; the bias,
    when asked for, is the pointwise conv's."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size2,
        stride: Size2 = 1,
        padding: Size2 = 0,
        dilation: Size2 = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if groups != 1:
            raise ModelArgumentError(f"SeparableConv2d is its own grouping (depthwise, then 1x1); got groups={groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, stride, padding, dilation,
                                   groups=in_channels, bias=False)  # fmt: skip
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))
