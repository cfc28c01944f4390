"""The ShuffleNet units.

v1 (Zhang et al. 2018, "ShuffleNet", Fig. 2b-c): 1x1 group conv, channel shuffle, 3x3 depthwise conv,
1x1 group conv, then the shortcut. At stride 1 the shortcut is the identity and is added; at stride 2 it is a
3x3 average pool whose output is concatenated, so the branch makes only ``out - in`` channels. ReLU after the
first 1x1 and after the merge, none after the depthwise conv; the bottleneck has ``out / 4`` channels.

v2 (Ma et al. 2018, "ShuffleNet V2", Fig. 3c-d): channel split into two halves; one passes unchanged, the
other goes through 1x1, 3x3 depthwise, 1x1 (no groups: guideline G2); concatenation, then a shuffle with two
groups. The stride-2 unit has no split: both branches see the whole input and each halves the resolution.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError
from cnnlab.layers.channel_shuffle import ChannelShuffle, channel_shuffle
from cnnlab.layers.conv_bn_act import ConvBnAct, create_act
from cnnlab.layers.depthwise_separable import DepthwiseSeparableConv
from cnnlab.layers.types import LayerFactory


class ShuffleV1Unit(nn.Module):
    """ShuffleNet v1 unit; ``first_groups`` is the groups of the first 1x1 (1 in the first unit of the
    network: "the number of input channels is relatively small")."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        stride: int = 1,
        groups: int = 3,
        first_groups: int | None = None,
        act_layer: LayerFactory = nn.ReLU,
        shuffle: bool = True,  # False: the "without shuffle" arm of the paper's Table 3
    ) -> None:
        super().__init__()
        if stride not in (1, 2) or (stride == 1 and in_chs != out_chs):
            raise ModelArgumentError(
                f"a ShuffleNet v1 unit maps C->C at stride 1 or C->C' at 2; got {in_chs}->{out_chs} at stride {stride}"
            )
        mid = out_chs // 4
        branch_out = out_chs - in_chs if stride == 2 else out_chs
        first_groups = groups if first_groups is None else first_groups
        for name, c in (("bottleneck", mid), ("output", branch_out)):
            if c % groups or mid % first_groups:
                raise ModelArgumentError(f"ShuffleNet v1 unit: {name} width {c} is not divisible by {groups} groups")
        self.stride = stride
        self.conv1 = ConvBnAct(in_chs, mid, 1, groups=first_groups, act_layer=act_layer)
        self.groups = groups
        self.shuffle = ChannelShuffle(groups) if shuffle else nn.Identity()
        self.conv2 = ConvBnAct(mid, mid, 3, stride=stride, groups=mid, act_layer=None)  # depthwise
        self.conv3 = ConvBnAct(mid, branch_out, 1, groups=groups, act_layer=None)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()
        self.act = create_act(act_layer)

    def forward(self, x: Tensor) -> Tensor:
        out = self.shuffle(self.conv1(x))
        out = self.conv3(self.conv2(out))
        merged = torch.cat((self.shortcut(x), out), 1) if self.stride == 2 else out + x
        return self.act(merged)


class ShuffleV2Unit(nn.Module):
    """ShuffleNet v2 unit. ``branch1`` (stride 2 only) is a depthwise 3x3 and a 1x1; ``branch2`` is
    1x1, depthwise 3x3, 1x1. Each branch makes ``out_chs / 2`` channels."""

    def __init__(self, in_chs: int, out_chs: int, *, stride: int = 1, act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        if stride not in (1, 2) or out_chs % 2 or (stride == 1 and in_chs != out_chs):
            raise ModelArgumentError(
                f"a ShuffleNet v2 unit maps C->C at stride 1 or C->C' (even) at 2; got "
                f"{in_chs}->{out_chs} at stride {stride}"
            )
        half = out_chs // 2
        branch2_in = in_chs if stride == 2 else half
        self.stride = stride
        self.branch1 = (
            DepthwiseSeparableConv(in_chs, half, stride=stride, act_layer=act_layer, dw_act=False)
            if stride == 2
            else None
        )
        self.branch2 = nn.Sequential(
            ConvBnAct(branch2_in, half, 1, act_layer=act_layer),
            DepthwiseSeparableConv(half, half, stride=stride, act_layer=act_layer, dw_act=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = x.chunk(2, dim=1) if self.branch1 is None else (self.branch1(x), x)
        out = torch.cat((x1, self.branch2(x2)), 1)
        return channel_shuffle(out, 2)
