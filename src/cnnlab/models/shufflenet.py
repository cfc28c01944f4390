"""ShuffleNet v1 and v2.

Zhang, Zhou, Lin, Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices",
CVPR 2018 (Table 1: groups g = 1, 2, 3, 4, 8; width "ShuffleNet s x" scales every width by s).
Ma, Zhang, Zheng, Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design", ECCV 2018
(Table 5: 0.5x, 1x, 1.5x, 2x). The units are :mod:`cnnlab.layers.shuffle_unit`.

Both nets: a 3x3/2 conv to 24 channels, a 3x3/2 max pool, stages 2-4 of 4, 8 and 4 units (the first at stride
2), global average pooling and a fc; v2 adds a 1x1 conv (``conv5``) before the pooling. ShuffleNet v2 follows
torchvision's layout and loads its weights through ``TORCHVISION_V2_KEYS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from cnnlab.data.preprocess import TORCHVISION_V2
from cnnlab.errors import ModelArgumentError, check_positive
from cnnlab.layers import ClassifierHead, ConvBnAct, ShuffleV1Unit, ShuffleV2Unit, make_divisible
from cnnlab.models.base import CnnlabModel, FeatureInfo, check_count, init_weights
from cnnlab.registry import Peer, register_model
from cnnlab.weights import KeyMap

STAGE_REPEATS = (4, 8, 4)
"""Units in stages 2, 3 and 4 (Table 1 of both papers)."""

V1_WIDTHS = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
"""Stage 2's output channels of ShuffleNet 1x for each number of groups (Table 1); stages 3 and 4 double it."""


class _ShuffleNet(CnnlabModel):
    """Stem, stages 2-4 built by ``make_unit(in_chs, out_chs, stride, first)``, optional ``conv5``, head.
    Every conv and pool pads, so any input size from 1 pixel up is taken."""

    def _build(
        self,
        stem_chs: int,
        stage_chs: Sequence[int],
        repeats: Sequence[int],
        last_chs: int | None,
        make_unit: Callable[[int, int, int, bool], nn.Module],
    ) -> None:
        if len(stage_chs) != 3 or len(repeats) != 3:
            raise ModelArgumentError(f"a ShuffleNet has 3 stages; got widths {list(stage_chs)}, units {list(repeats)}")
        self.stem = ConvBnAct(self.in_chans, stem_chs, 3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.feature_info = [FeatureInfo("stem", stem_chs, 2)]
        chs = stem_chs
        for s, (out, n) in enumerate(zip(stage_chs, repeats, strict=True), start=2):
            stage = nn.Sequential()
            for j in range(check_count("units per stage", n, minimum=1)):
                stage.add_module(str(j), make_unit(chs, out, 2 if j == 0 else 1, s == 2 and j == 0))
                chs = out
            self.add_module(f"stage{s}", stage)
            self.feature_info.append(FeatureInfo(f"stage{s}", chs, 2**s * 2))
        self.conv5 = ConvBnAct(chs, last_chs, 1) if last_chs else None
        if self.conv5 is not None:
            chs = last_chs
            self.feature_info.append(FeatureInfo("conv5", chs, 32))
        self.num_features = chs
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.pool(self.stem(x))  # N x 24 x H/4 x W/4
        x = self.stage2(x)  # N x C x H/8 x W/8
        x = self.stage3(x)  # N x 2C x H/16 x W/16
        x = self.stage4(x)  # N x 4C x H/32 x W/32
        return x if self.conv5 is None else self.conv5(x)


class ShuffleNetV1(_ShuffleNet):
    """ShuffleNet v1 with ``groups`` in its 1x1 convs and width ``width_mult`` (Table 1; 1x g=3: 140 MFLOPs,
    32.6% top-1 error in Table 8).

    Widths are rounded so every group conv divides: stage widths to a multiple of 4g (the bottleneck is a
    quarter of the width), the stem to a multiple of g (at 0.5x, g=8 that gives 16 stem channels, as in the
    authors' code). The first unit's first 1x1 has no groups (Sec. 3.3).
    """

    def __init__(
        self,
        *,
        groups: int = 3,
        width_mult: float = 1.0,  # the paper's s: 0.5, 1.0 (and 0.25, 1.5, 2.0 where the rounding allows)
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        shuffle: bool = True,  # False: no channel shuffle between the group convs (Table 3's ablation)
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        if groups not in V1_WIDTHS:
            raise ModelArgumentError(f"ShuffleNet v1 has groups in {sorted(V1_WIDTHS)}, got {groups!r}")
        width_mult = check_positive("width_mult", width_mult)
        self.groups = groups
        stage_chs = [make_divisible(V1_WIDTHS[groups] * 2**i * width_mult, 4 * groups) for i in range(3)]

        def unit(in_chs: int, out_chs: int, stride: int, first: bool) -> nn.Module:
            first_groups = 1 if first else groups
            return ShuffleV1Unit(
                in_chs, out_chs, stride=stride, groups=groups, first_groups=first_groups, shuffle=shuffle
            )

        self._build(make_divisible(24 * width_mult, groups), stage_chs, STAGE_REPEATS, None, unit)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)


_V2_BRANCH_KEYS = tuple(
    (rf"\.branch{b}\.{i}\.", f".branch{b}.{ours}.")
    for b, i, ours in (
        (1, 0, "depthwise.conv"), (1, 1, "depthwise.bn"), (1, 2, "pointwise.conv"), (1, 3, "pointwise.bn"),
        (2, 0, "0.conv"), (2, 1, "0.bn"), (2, 3, "1.depthwise.conv"), (2, 4, "1.depthwise.bn"),
        (2, 5, "1.pointwise.conv"), (2, 6, "1.pointwise.bn"),
    )
)  # fmt: skip
TORCHVISION_V2_KEYS = KeyMap(
    (
        (r"^conv1\.0\.", "stem.conv."),
        (r"^conv1\.1\.", "stem.bn."),
        (r"^conv5\.0\.", "conv5.conv."),
        (r"^conv5\.1\.", "conv5.bn."),
        (r"^fc\.", "head.fc."),
        *_V2_BRANCH_KEYS,
    )
)
"""torchvision's naming: conv1, stageN.i.branch{1,2}.K (flat Sequentials), conv5, fc."""


class ShuffleNetV2(_ShuffleNet):
    """ShuffleNet v2 (Table 5): ``stage_chs`` are the widths of stages 2-4, ``last_chs`` that of conv5."""

    def __init__(
        self,
        *,
        stage_chs: Sequence[int] = (116, 232, 464),
        last_chs: int = 1024,
        stage_repeats: Sequence[int] = STAGE_REPEATS,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)

        def unit(in_chs: int, out_chs: int, stride: int, first: bool) -> nn.Module:
            return ShuffleV2Unit(in_chs, out_chs, stride=stride)

        self._build(24, stage_chs, stage_repeats, last_chs, unit)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)

    weight_key_maps = {"torchvision": TORCHVISION_V2_KEYS}


V1_VARIANT_WIDTHS = (0.5, 1.0, 2.0)
"""The widths registered for every number of groups: ``shufflenet_v1_g{g}_x{0_5,1_0,2_0}``."""


def v1_variant_name(groups: int, width: float) -> str:
    """The registered name of ShuffleNet v1 ``width`` x with ``groups``: ``shufflenet_v1_g3_x1_0`` for g=3, 1.0x."""
    return f"shufflenet_v1_g{groups}_x{width:.1f}".replace(".", "_")


def _register_v1(groups: int, width: float) -> None:
    """Register the builder of ShuffleNet v1 ``width`` x with ``groups`` under :func:`v1_variant_name`."""

    def builder(**kwargs: Any) -> ShuffleNetV1:
        return ShuffleNetV1(**(dict(groups=groups, width_mult=width) | kwargs))

    builder.__name__ = builder.__qualname__ = v1_variant_name(groups, width)
    builder.__doc__ = f"ShuffleNet v1 {width}x with g={groups} (Zhang et al. 2018, Table 1)."
    register_model(builder)


def _register_v1_variants() -> None:
    for groups in V1_WIDTHS:
        for width in V1_VARIANT_WIDTHS:
            _register_v1(groups, width)


_register_v1_variants()


def _v2(stage_chs: tuple[int, int, int], last_chs: int, kwargs: dict[str, Any]) -> ShuffleNetV2:
    return ShuffleNetV2(**(dict(stage_chs=stage_chs, last_chs=last_chs) | kwargs))


@register_model(peers=(Peer("torchvision", "shufflenet_v2_x0_5"),))
def shufflenet_v2_x0_5(**kwargs: Any) -> ShuffleNetV2:
    """ShuffleNet v2 0.5x (Table 5: 41 MFLOPs); 1,366,792 params."""
    return _v2((48, 96, 192), 1024, kwargs)


@register_model(peers=(Peer("torchvision", "shufflenet_v2_x1_0"),))
def shufflenet_v2_x1_0(**kwargs: Any) -> ShuffleNetV2:
    """ShuffleNet v2 1x (Table 5: 146 MFLOPs, 30.6% top-1 error); 2,278,604 params."""
    return _v2((116, 232, 464), 1024, kwargs)


@register_model(peers=(Peer("torchvision", "shufflenet_v2_x1_5"),), preprocess=TORCHVISION_V2)
def shufflenet_v2_x1_5(**kwargs: Any) -> ShuffleNetV2:
    """ShuffleNet v2 1.5x (Table 5: 299 MFLOPs)."""
    return _v2((176, 352, 704), 1024, kwargs)


@register_model(peers=(Peer("torchvision", "shufflenet_v2_x2_0"),), preprocess=TORCHVISION_V2)
def shufflenet_v2_x2_0(**kwargs: Any) -> ShuffleNetV2:
    """ShuffleNet v2 2x (Table 5: 591 MFLOPs)."""
    return _v2((244, 488, 976), 2048, kwargs)
