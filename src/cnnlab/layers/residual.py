"""Residual blocks (He et al. 2016, "Deep Residual Learning for Image Recognition", Fig. 2 and 5).

A block computes ``act(F(x) + shortcut(x))``. :class:`BasicBlock` has two 3x3 convs (ResNet-18/34 and the
CIFAR nets); :class:`Bottleneck` has 1x1 (reduce), 3x3, 1x1 (restore, x4) and serves ResNet-50 and deeper.
Both take the same keyword arguments, so a network receives its block as an argument:

* ``shortcut``: option "A", "B" or "C" (see :mod:`cnnlab.layers.shortcut`);
* ``plain=True``: no shortcut at all, the "plain" twin of the degradation experiment (Fig. 1, 4, 6);
* ``attn_layer``: a channel-attention layer applied to F(x) before the addition, for example
  ``partial(SqueezeExcite, reduction=16)`` (SE-ResNet, Hu et al. 2018, Fig. 3);
* ``groups`` / ``base_width``: ResNeXt cardinality and width (Xie et al. 2017) and Wide ResNet (x2 width);
* ``stride_in``: where a Bottleneck downsamples: on the first 1x1 as in the paper (and Caffe, SENet), or on
  the 3x3 as in torchvision ("ResNet v1.5": same parameters, more MACs, better accuracy).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError
from cnnlab.layers.conv_bn_act import ConvBnAct, create_act
from cnnlab.layers.shortcut import ShortcutOption, make_shortcut
from cnnlab.layers.types import LayerFactory

StrideIn = Literal["1x1", "3x3"]


def bottleneck_width(planes: int, *, groups: int, base_width: int) -> int:
    """Channels of a bottleneck's 3x3: ``int(planes * base_width / 64) * groups``."""
    return int(planes * (base_width / 64.0)) * groups


def split_stride(stride: int, stride_in: StrideIn) -> tuple[int, int]:
    """(stride of the first 1x1, stride of the 3x3) for a bottleneck that downsamples by ``stride``."""
    if stride_in not in ("1x1", "3x3"):
        raise ModelArgumentError(f"stride_in must be '1x1' (paper) or '3x3' (torchvision), got {stride_in!r}")
    return (stride, 1) if stride_in == "1x1" else (1, stride)


class ResidualBlock(nn.Module):
    """What every residual block shares: attention on F(x), the shortcut, the addition, the activation.

    Subclasses build their convs, call :meth:`_init_merge` and end ``forward`` with ``self.merge(out, x)``.
    """

    expansion: ClassVar[int] = 1
    pre_activation: ClassVar[bool] = False

    def _init_merge(
        self,
        in_chs: int,
        out_chs: int,
        *,
        stride: int,
        shortcut: ShortcutOption,
        plain: bool,
        attn_layer: LayerFactory | None,
        norm_layer: LayerFactory | None,
        act_layer: LayerFactory | None,
    ) -> None:
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride
        self.attn = attn_layer(out_chs) if attn_layer is not None else nn.Identity()
        self.shortcut = (
            None if plain else make_shortcut(shortcut, in_chs, out_chs, stride=stride, norm_layer=norm_layer)
        )
        self.act = create_act(act_layer) if act_layer is not None else nn.Identity()

    def merge(self, out: Tensor, x: Tensor) -> Tensor:
        """``act(attn(out) + shortcut(x))``; a plain block has no shortcut and returns ``act(attn(out))``."""
        out = self.attn(out)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


class BasicBlock(ResidualBlock):
    """Two 3x3 conv-BN layers, ReLU between and after the addition (Fig. 5 left). ``planes`` = output channels.

    ``stride_in`` is accepted so that every block takes the same arguments; a BasicBlock has no 1x1, and its
    stride is always on the first 3x3.
    """

    expansion: ClassVar[int] = 1

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
            raise ModelArgumentError("BasicBlock has no groups or base_width; use Bottleneck for ResNeXt/WRN")
        out_chs = planes * self.expansion
        self.conv1 = ConvBnAct(
            in_chs, planes, 3, stride=stride, dilation=dilation, norm_layer=norm_layer, act_layer=act_layer
        )
        self.conv2 = ConvBnAct(planes, out_chs, 3, dilation=dilation, norm_layer=norm_layer, act_layer=None)
        self._init_merge(
            in_chs,
            out_chs,
            stride=stride,
            shortcut=shortcut,
            plain=plain,
            attn_layer=attn_layer,
            norm_layer=norm_layer,
            act_layer=act_layer,
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return self.merge(out, x)


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3, 1x1 restore to ``4 * planes`` channels (Fig. 5 right).

    The 3x3 has ``int(planes * base_width / 64) * groups`` channels: 64 -> 64 in ResNet-50's first stage,
    ``groups=32, base_width=4`` gives ResNeXt-50 32x4d (128 channels in 32 groups), ``base_width=128``
    gives Wide-ResNet-50-2.
    """

    expansion: ClassVar[int] = 4

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
        self.conv1 = ConvBnAct(in_chs, width, 1, stride=stride_1x1, norm_layer=norm_layer, act_layer=act_layer)
        self.conv2 = ConvBnAct(
            width,
            width,
            3,
            stride=stride_3x3,
            dilation=dilation,
            groups=groups,
            norm_layer=norm_layer,
            act_layer=act_layer,
        )
        self.conv3 = ConvBnAct(width, out_chs, 1, norm_layer=norm_layer, act_layer=None)
        self._init_merge(
            in_chs,
            out_chs,
            stride=stride,
            shortcut=shortcut,
            plain=plain,
            attn_layer=attn_layer,
            norm_layer=norm_layer,
            act_layer=act_layer,
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv3(self.conv2(self.conv1(x)))
        return self.merge(out, x)
