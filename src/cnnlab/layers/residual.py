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

from dataclasses import dataclass
from typing import ClassVar, Literal

from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError, check_count
from cnnlab.layers.conv_bn_act import ConvBnAct, create_act
from cnnlab.layers.shortcut import ShortcutOption, make_shortcut
from cnnlab.layers.types import LayerFactory

StrideIn = Literal["1x1", "3x3"]


def bottleneck_width(planes: int, *, groups: int, base_width: int) -> int:
    """Channels of a bottleneck's 3x3: ``int(planes * base_width / 64) * groups``."""
    check_count("groups", groups, minimum=1)
    check_count("base_width", base_width, minimum=1)
    return int(planes * (base_width / 64.0)) * groups


def split_stride(stride: int, stride_in: StrideIn) -> tuple[int, int]:
    """(stride of the first 1x1, stride of the 3x3) for a bottleneck that downsamples by ``stride``."""
    if stride_in not in ("1x1", "3x3"):
        raise ModelArgumentError(f"stride_in must be '1x1' (paper) or '3x3' (torchvision), got {stride_in!r}")
    return (stride, 1) if stride_in == "1x1" else (1, stride)


@dataclass(frozen=True)
class BranchSpec:
    """What a block's residual branch F(x) is built from (the arguments of :class:`ResidualBlock`)."""

    in_chs: int
    planes: int
    out_chs: int  # planes * expansion
    stride: int
    groups: int
    base_width: int
    dilation: int
    stride_in: StrideIn
    norm_layer: LayerFactory | None
    act_layer: LayerFactory
    conv_layer: LayerFactory = nn.Conv2d  # the 3x3 convs' class, e.g. DeformConv2d


class ResidualBlock(nn.Module):
    """``act(attn(F(x)) + shortcut(x))``, with F built by the subclass in :meth:`build_branch`.

    Every block takes these keyword arguments, so a network receives its block as an argument:

    Args:
        in_chs: input channels; ``planes``: the block's width, output channels ``planes * expansion``.
        stride: the block's downsampling.
        shortcut: option "A", "B" or "C" (:mod:`cnnlab.layers.shortcut`).
        plain: no shortcut at all (the plain twin).
        attn_layer: channel attention on F(x) before the addition, e.g. ``partial(SqueezeExcite, reduction=16)``.
        groups, base_width: the 3x3's cardinality and width per group (bottlenecks only).
        dilation: the 3x3 convs' dilation.
        stride_in: where a bottleneck downsamples, "1x1" (paper) or "3x3" (torchvision); a block without
            a 1x1 ignores it.
        norm_layer, act_layer: the normalisation (None: none, and the convs get biases) and activation layers.
        conv_layer: the class of the 3x3 convs, called like ``nn.Conv2d`` (e.g. a deformable conv).
    """

    expansion: ClassVar[int] = 1
    pre_activation: ClassVar[bool] = False

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
        out_chs = planes * self.expansion
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride
        self.build_branch(
            BranchSpec(
                in_chs,
                planes,
                out_chs,
                stride,
                groups,
                base_width,
                dilation,
                stride_in,
                norm_layer,
                act_layer,
                conv_layer,
            )
        )
        self.attn = attn_layer(out_chs) if attn_layer is not None else nn.Identity()
        # A pre-activation block's projection is a bare 1x1 conv: the sum it joins is not normalised.
        shortcut_norm = None if self.pre_activation else norm_layer
        self.shortcut = (
            None if plain else make_shortcut(shortcut, in_chs, out_chs, stride=stride, norm_layer=shortcut_norm)
        )
        self.act = nn.Identity() if self.pre_activation else create_act(act_layer)

    def build_branch(self, spec: BranchSpec) -> None:
        """Create the convs of F(x) as attributes ``conv1``, ``conv2``, ..."""
        raise NotImplementedError

    def merge(self, out: Tensor, x: Tensor) -> Tensor:
        """``act(attn(out) + shortcut(x))``; a plain block has no shortcut and returns ``act(attn(out))``."""
        out = self.attn(out)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


def check_no_groups(spec: BranchSpec, name: str) -> None:
    if spec.groups != 1 or spec.base_width != 64:
        raise ModelArgumentError(f"{name} has no groups or base_width; use a bottleneck block for ResNeXt/WRN")


class BasicBlock(ResidualBlock):
    """Two 3x3 conv-BN layers, ReLU between and after the addition (Fig. 5 left)."""

    expansion: ClassVar[int] = 1

    def build_branch(self, spec: BranchSpec) -> None:
        check_no_groups(spec, "BasicBlock")
        layer = {"dilation": spec.dilation, "norm_layer": spec.norm_layer, "conv_layer": spec.conv_layer}
        self.conv1 = ConvBnAct(spec.in_chs, spec.planes, 3, stride=spec.stride, act_layer=spec.act_layer, **layer)
        self.conv2 = ConvBnAct(spec.planes, spec.out_chs, 3, act_layer=None, **layer)

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

    def build_branch(self, spec: BranchSpec) -> None:
        width = bottleneck_width(spec.planes, groups=spec.groups, base_width=spec.base_width)
        stride_1x1, stride_3x3 = split_stride(spec.stride, spec.stride_in)
        norm, act = spec.norm_layer, spec.act_layer
        self.conv1 = ConvBnAct(spec.in_chs, width, 1, stride=stride_1x1, norm_layer=norm, act_layer=act)
        self.conv2 = ConvBnAct(
            width,
            width,
            3,
            stride=stride_3x3,
            dilation=spec.dilation,
            groups=spec.groups,
            norm_layer=norm,
            act_layer=act,
            conv_layer=spec.conv_layer,
        )
        self.conv3 = ConvBnAct(width, spec.out_chs, 1, norm_layer=norm, act_layer=None)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv3(self.conv2(self.conv1(x)))
        return self.merge(out, x)
