"""Residual blocks (He et al. 2016, "Deep Residual Learning for Image Recognition", Fig. 2 and 5).

A block computes ``act(F(x) + shortcut(x))``. :class:`BasicBlock` has two 3x3 convs (ResNet-18/34 and the
CIFAR nets); :class:`Bottleneck` has 1x1 (reduce), 3x3, 1x1 (restore, x4) and serves ResNet-50 and deeper.
Both take the same keyword arguments, so a network receives its block as an argument:

* ``shortcut``: option "A", "B" or "C" (see :mod:`cnnlab.layers.shortcut`);
* ``plain=True``: no shortcut at all, the "plain" twin of the degradation experiment (Fig. 1, 4, 6);
* ``branch_layers`` (BasicBlock): 2 3x3 conv-BN layers in the branch (the paper's block), or 1, the single-layer
  branch of Sec. 3.1, ``y = W1 x + x``, "for which we have not observed advantages";
* ``attn_layer``: a channel-attention layer applied to F(x) before the addition, for example
  ``partial(SqueezeExcite, reduction=16)`` (SE-ResNet, Hu et al. 2018, Fig. 3);
* ``groups`` / ``base_width``: ResNeXt cardinality and width (Xie et al. 2017) and Wide ResNet (x2 width);
* ``stride_in``: where a Bottleneck downsamples: on the first 1x1 as in the paper (and Caffe, SENet), or on
  the 3x3 as in torchvision ("ResNet v1.5": same parameters, more MACs, better accuracy);
* ``dilation``: the 3x3 convs' dilation; ``conv_layer``: their class (e.g. a deformable conv);
* ``norm_layer`` (None: none, and the convs get biases) and ``act_layer``.

:meth:`ResidualBlock.zero_init_last` starts the block as its shortcut: the last BN of the branch starts with
scale 0 (timm's ``zero_init_last``; Goyal et al. 2017, "Accurate, Large Minibatch SGD", initialise each residual
block's last BN this way). Not in He et al. 2016, so the models leave it off by default.
"""

from __future__ import annotations

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


def check_no_groups(groups: int, base_width: int, block: str) -> None:
    """A block with two 3x3 convs has no cardinality or width per group: refuse them rather than ignore them."""
    if groups != 1 or base_width != 64:
        raise ModelArgumentError(f"{block} has no groups or base_width; use a bottleneck block for ResNeXt/WRN")


def zero_last_norm(unit: ConvBnAct) -> None:
    """Make a conv-BN unit output zeros: its BN's scale and shift, or, without a norm (or a norm without
    parameters), its conv's weights and bias."""
    layer = getattr(unit, "bn", None)
    if layer is None or getattr(layer, "weight", None) is None:
        layer = unit.conv
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class ResidualBlock(nn.Module):
    """What every residual block has, so that a network takes its block as an argument and the probes find it.

    Attributes: ``in_chs``, ``out_chs`` (``planes * expansion``), ``stride``; ``shortcut`` (``None`` in a plain
    block) and ``act`` (after the addition; the identity in a pre-activation block), so that a block without its
    branch is ``act(shortcut(x))`` (:mod:`cnnlab.experiments.probes`).
    """

    expansion: ClassVar[int] = 1
    pre_activation: ClassVar[bool] = False

    in_chs: int
    out_chs: int
    stride: int
    shortcut: nn.Module | None
    act: nn.Module

    def zero_init_last(self) -> None:
        """Zero the layer that ends the residual branch, so that the block starts as ``act(shortcut(x))``."""
        raise NotImplementedError


class BasicBlock(ResidualBlock):
    """Two 3x3 conv-BN layers, ReLU between and after the addition (Fig. 5 left):
    ``act(attn(bn2(conv2(relu(bn1(conv1(x)))))) + shortcut(x))``.

    ``branch_layers=1`` keeps only the first conv-BN, without its ReLU: ``act(attn(bn1(conv1(x))) + shortcut(x))``,
    the single-layer branch that He et al. (Sec. 3.1) found no better than a plain layer (``conv2`` is then the
    identity). Its plain twin (``plain=True``) is a plain net's conv-BN-ReLU layer.

    Args: as in the module's docstring. ``groups`` and ``base_width`` must keep their defaults (a
    ModelArgumentError otherwise); ``stride_in`` is ignored (there is no 1x1 to carry the stride).
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
        norm_layer: LayerFactory | None = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
        conv_layer: LayerFactory = nn.Conv2d,
        branch_layers: int = 2,  # 3x3 conv-BN layers in the branch: 2 (Fig. 5 left) or 1 (Sec. 3.1's y = W1 x + x)
    ) -> None:
        super().__init__()
        check_no_groups(groups, base_width, "BasicBlock")
        if branch_layers not in (1, 2):
            raise ModelArgumentError(f"branch_layers must be 1 or 2 (3x3 conv-BN layers in the branch), got "
                                     f"{branch_layers!r}")  # fmt: skip
        self.in_chs, self.out_chs, self.stride = in_chs, planes * self.expansion, stride
        layer = {"dilation": dilation, "norm_layer": norm_layer, "conv_layer": conv_layer}
        two = branch_layers == 2
        self.conv1 = ConvBnAct(
            in_chs, planes if two else self.out_chs, 3, stride=stride, act_layer=act_layer if two else None, **layer
        )
        self.conv2 = ConvBnAct(planes, self.out_chs, 3, act_layer=None, **layer) if two else nn.Identity()
        self.attn = attn_layer(self.out_chs) if attn_layer is not None else nn.Identity()
        self.shortcut = (
            None if plain else make_shortcut(shortcut, in_chs, self.out_chs, stride=stride, norm_layer=norm_layer)
        )
        self.act = create_act(act_layer)

    def zero_init_last(self) -> None:
        zero_last_norm(self.conv2 if isinstance(self.conv2, ConvBnAct) else self.conv1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)  # conv-BN-ReLU (conv-BN in a one-layer branch); N x planes x H/s x W/s
        out = self.conv2(out)  # conv-BN (the identity in a one-layer branch)
        out = self.attn(out)
        if self.shortcut is not None:  # a plain block has none
            out = out + self.shortcut(x)
        return self.act(out)


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3, 1x1 restore to ``4 * planes`` channels (Fig. 5 right), then
    ``act(attn(F(x)) + shortcut(x))``.

    The 3x3 has ``int(planes * base_width / 64) * groups`` channels: 64 -> 64 in ResNet-50's first stage,
    ``groups=32, base_width=4`` gives ResNeXt-50 32x4d (128 channels in 32 groups), ``base_width=128``
    gives Wide-ResNet-50-2. The stride sits on the 3x3 (``stride_in="3x3"``, torchvision) or on the first
    1x1 (``"1x1"``, the paper). Other arguments: as in the module's docstring.
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
        norm_layer: LayerFactory | None = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
        conv_layer: LayerFactory = nn.Conv2d,
    ) -> None:
        super().__init__()
        self.in_chs, self.out_chs, self.stride = in_chs, planes * self.expansion, stride
        width = bottleneck_width(planes, groups=groups, base_width=base_width)
        stride_1x1, stride_3x3 = split_stride(stride, stride_in)
        norm = {"norm_layer": norm_layer}
        self.conv1 = ConvBnAct(in_chs, width, 1, stride=stride_1x1, act_layer=act_layer, **norm)
        self.conv2 = ConvBnAct(
            width,
            width,
            3,
            stride=stride_3x3,
            dilation=dilation,
            groups=groups,
            act_layer=act_layer,
            conv_layer=conv_layer,
            **norm,
        )
        self.conv3 = ConvBnAct(width, self.out_chs, 1, act_layer=None, **norm)
        self.attn = attn_layer(self.out_chs) if attn_layer is not None else nn.Identity()
        self.shortcut = (
            None if plain else make_shortcut(shortcut, in_chs, self.out_chs, stride=stride, norm_layer=norm_layer)
        )
        self.act = create_act(act_layer)

    def zero_init_last(self) -> None:
        zero_last_norm(self.conv3)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)  # 1x1 reduce, BN, ReLU; N x width x H x W (H/s with stride_in="1x1")
        out = self.conv2(out)  # 3x3, BN, ReLU; N x width x H/s x W/s
        out = self.conv3(out)  # 1x1 restore, BN; N x 4 planes x H/s x W/s
        out = self.attn(out)
        if self.shortcut is not None:  # a plain block has none
            out = out + self.shortcut(x)
        return self.act(out)
