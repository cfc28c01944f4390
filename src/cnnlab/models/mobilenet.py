"""MobileNet v1 and v2.

Howard et al. 2017, "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications"
(Table 1; width multiplier alpha, Sec. 4.2). Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear
Bottlenecks" (Table 2). Both scale every width by ``width_mult`` and round to a multiple of 8
(:func:`~cnnlab.layers.types.make_divisible`). MobileNet v2 follows torchvision's layout, whose weights
load through the key map that :func:`torchvision_v2_keys` builds from the layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from torch import Tensor, nn

from cnnlab.data.preprocess import TORCHVISION_V2
from cnnlab.errors import ModelArgumentError, check_positive
from cnnlab.layers import ClassifierHead, ConvBnAct, DepthwiseSeparableConv, InvertedResidual, make_divisible
from cnnlab.layers.types import LayerFactory
from cnnlab.models.base import CnnlabModel, check_count, init_weights
from cnnlab.registry import Peer, register_model
from cnnlab.weights import KeyMap

V1_STAGES: tuple[tuple[tuple[int, int], ...], ...] = (
    ((64, 1),),
    ((128, 2), (128, 1)),
    ((256, 2), (256, 1)),
    ((512, 2),) + ((512, 1),) * 5,
    ((1024, 2), (1024, 1)),
)
"""Table 1's depthwise-separable layers as (output channels, stride), grouped into stages by resolution."""


class MobileNetV1(CnnlabModel):
    """MobileNet v1: a 3x3/2 conv to 32 channels, 13 depthwise-separable convs (BN and ReLU after both the
    depthwise and the pointwise conv, Fig. 3), global average pooling, a fc. 4,231,976 params at width 1.0
    (Table 8: 4.2M, 569M mult-adds).

    ``block_layer`` builds each of the 13 layers as ``block_layer(in_chs, out_chs, stride=...)``:
    :class:`~cnnlab.layers.ConvBnAct` (named ``conv_bn_act``) makes each a full 3x3 conv-BN-ReLU of the same
    widths and stride, Table 4's "Conv MobileNet": 29,294,088 params and 4.867 GMACs at 224 (paper: 29.3M,
    4866M mult-adds). ``stem_stride=1`` (not in the paper) keeps a small input's map 1/16 of the input instead of
    1/32, so that a 42 px digit ends on a 3x3 map rather than 2x2 (and a 28 px one on 2x2 rather than 1x1).
    """

    def __init__(
        self,
        *,
        width_mult: float = 1.0,  # the paper's alpha: 1.0, 0.75, 0.5, 0.25
        block_layer: LayerFactory = DepthwiseSeparableConv,  # ConvBnAct: full 3x3 convs (Table 4)
        stem_stride: int = 2,  # the paper's 3x3/2 stem; 1 for 28-60 px inputs
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        alpha = check_positive("width_mult", width_mult)
        if stem_stride not in (1, 2):
            raise ModelArgumentError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
        stem = ConvBnAct(in_chans, make_divisible(32 * alpha), 3, stride=stem_stride)
        chs = self.add_stage("stem", stem, stem_stride)
        reduction = stem_stride
        for s, layers in enumerate(V1_STAGES, start=1):
            stage = nn.Sequential()
            for j, (c, stride) in enumerate(layers):
                stage.add_module(str(j), block_layer(chs, make_divisible(c * alpha), stride=stride))
                chs, reduction = make_divisible(c * alpha), reduction * stride
            self.add_stage(f"stage{s}", stage, reduction)
        self.num_features = chs
        self.head = ClassifierHead(chs, num_classes, drop_rate=drop_rate)
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # N x 32 x H/2 x W/2 (stem_stride 2; H x W with 1, and so on below)
        x = self.stage1(x)
        x = self.stage2(x)  # N x 128 x H/4 x W/4
        x = self.stage3(x)  # N x 256 x H/8 x W/8
        x = self.stage4(x)  # N x 512 x H/16 x W/16
        return self.stage5(x)  # N x 1024 x H/32 x W/32


class V2Row(NamedTuple):
    """A row of Table 2: expansion t, output channels c, repeats n, stride s of the first repeat."""

    t: int
    c: int
    n: int
    s: int


V2_ROWS = (V2Row(1, 16, 1, 1), V2Row(6, 24, 2, 2), V2Row(6, 32, 3, 2), V2Row(6, 64, 4, 2), V2Row(6, 96, 3, 1),
           V2Row(6, 160, 3, 2), V2Row(6, 320, 1, 1))  # fmt: skip


def torchvision_v2_keys(rows: Sequence[V2Row]) -> KeyMap:
    """torchvision's flat ``features`` numbering (0 the stem, then one index per block, then the last 1x1)
    renamed to ``stem``, ``stage{r}.{j}.conv_pw/conv_dw/conv_pwl`` and ``conv_head``."""
    rules = [(r"^features\.0\.0\.", "stem.conv."), (r"^features\.0\.1\.", "stem.bn.")]
    i = 1
    for r, row in enumerate(rows, start=1):
        convs = ("conv_dw", "conv_pwl") if row.t == 1 else ("conv_pw", "conv_dw", "conv_pwl")
        for j in range(row.n):
            ours = f"stage{r}.{j}"
            for k, name in enumerate(convs[:-1]):
                rules += [(rf"^features\.{i}\.conv\.{k}\.0\.", f"{ours}.{name}.conv."),
                          (rf"^features\.{i}\.conv\.{k}\.1\.", f"{ours}.{name}.bn.")]  # fmt: skip
            k = len(convs) - 1  # the linear 1x1 is a bare conv and bn in torchvision
            rules += [(rf"^features\.{i}\.conv\.{k}\.", f"{ours}.conv_pwl.conv."),
                      (rf"^features\.{i}\.conv\.{k + 1}\.", f"{ours}.conv_pwl.bn.")]  # fmt: skip
            i += 1
    rules += [(rf"^features\.{i}\.0\.", "conv_head.conv."), (rf"^features\.{i}\.1\.", "conv_head.bn.")]
    return KeyMap((*rules, (r"^classifier\.1\.", "head.fc.")))


class MobileNetV2(CnnlabModel):
    """MobileNet v2 (Table 2): a 3x3/2 conv to 32 channels, seven rows of inverted residuals (``stage1`` to
    ``stage7``), a 1x1 conv to 1280, global average pooling, dropout 0.2, a fc. ReLU6 throughout.
    3,504,872 params, 0.30 GMACs at width 1.0. ``rows`` may change the seven rows' widths, repeats and
    strides, not their number."""

    def __init__(
        self,
        *,
        width_mult: float = 1.0,
        rows: Sequence[V2Row] = V2_ROWS,
        last_chs: int = 1280,  # the final 1x1 conv's width; not reduced for width_mult < 1 (Sec. 6.1)
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        if len(rows) != len(V2_ROWS):
            raise ModelArgumentError(f"MobileNet v2 has {len(V2_ROWS)} rows of Table 2; got {len(rows)} rows")
        alpha = check_positive("width_mult", width_mult)
        stem = ConvBnAct(in_chans, make_divisible(32 * alpha), 3, stride=2, act_layer=nn.ReLU6)
        chs = self.add_stage("stem", stem, 2)
        reduction = 2
        for r, row in enumerate(rows, start=1):
            stage, out = nn.Sequential(), make_divisible(row.c * alpha)
            for j in range(check_count("repeats per row", row.n, minimum=1)):
                stride = row.s if j == 0 else 1
                stage.add_module(str(j), InvertedResidual(chs, out, stride=stride, expand_ratio=row.t))
                chs, reduction = out, reduction * stride
            self.add_stage(f"stage{r}", stage, reduction)
        conv_head = ConvBnAct(chs, make_divisible(last_chs * max(1.0, alpha)), 1, act_layer=nn.ReLU6)
        self.num_features = self.add_stage("conv_head", conv_head, reduction)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)
        self.weight_key_maps = {"torchvision": torchvision_v2_keys(rows)}
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # N x 32 x H/2 x W/2
        x = self.stage1(x)  # N x 16 x H/2 x W/2 (Table 2's rows at width 1.0)
        x = self.stage2(x)  # N x 24 x H/4 x W/4
        x = self.stage3(x)  # N x 32 x H/8 x W/8
        x = self.stage4(x)  # N x 64 x H/16 x W/16
        x = self.stage5(x)  # N x 96 x H/16 x W/16
        x = self.stage6(x)  # N x 160 x H/32 x W/32
        x = self.stage7(x)  # N x 320 x H/32 x W/32
        return self.conv_head(x)  # N x 1280 x H/32 x W/32


@register_model
def mobilenet_v1(**kwargs: Any) -> MobileNetV1:
    """MobileNet v1 (Howard et al. 2017), width multiplier ``width_mult`` (1.0); 4,231,976 params at 1.0.

    ``block_layer=ConvBnAct`` (``conv_bn_act`` by name) is Table 4's full-convolution MobileNet, 29,294,088 params.
    """
    return MobileNetV1(**kwargs)


@register_model(peers=(Peer("torchvision", "mobilenet_v2"),), preprocess=TORCHVISION_V2)
def mobilenet_v2(**kwargs: Any) -> MobileNetV2:
    """MobileNet v2 (Sandler et al. 2018), width multiplier ``width_mult`` (1.0); 3,504,872 params."""
    return MobileNetV2(**kwargs)
