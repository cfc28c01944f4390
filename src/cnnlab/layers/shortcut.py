"""The shortcut connection of a residual block, in the three forms of He et al. 2016 (Sec. 3.3, 4.1).

* option A: the identity; where the shape changes, the input is subsampled by the stride and the new
  channels are zeros ("extra zero entries padded for increasing dimensions"); adds no parameters.
* option B: the identity, and a 1x1 projection (conv + BN) only where the shape changes.
* option C: a 1x1 projection on every block.

ImageNet ResNet-34 top-1 error (10-crop): A 25.03, B 24.52, C 24.19 (Table 3). The paper's CIFAR nets
use option A; torchvision's ImageNet nets use option B.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError
from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.types import LayerFactory

ShortcutOption = Literal["A", "B", "C"]
SHORTCUT_OPTIONS: tuple[ShortcutOption, ...] = ("A", "B", "C")


class ZeroPadShortcut(nn.Module):
    """Option A: subsample by ``stride`` and append ``out_chs - in_chs`` channels of zeros."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        if out_chs < in_chs:
            raise ModelArgumentError(f"option A cannot reduce channels ({in_chs} -> {out_chs}); use option B or C")
        self.extra_chs = out_chs - in_chs
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_chs))  # N x out_chs x H/s x W/s


def make_shortcut(
    option: ShortcutOption,
    in_chs: int,
    out_chs: int,
    *,
    stride: int = 1,
    norm_layer: LayerFactory = nn.BatchNorm2d,
) -> nn.Module:
    """The shortcut of a block that maps ``in_chs`` to ``out_chs`` at ``stride``, following ``option``."""
    if option not in SHORTCUT_OPTIONS:
        raise ModelArgumentError(f"shortcut option must be one of {SHORTCUT_OPTIONS}, got {option!r}")
    same_shape = in_chs == out_chs and stride == 1
    if option == "C" or (option == "B" and not same_shape):
        return ConvBnAct(in_chs, out_chs, 1, stride=stride, norm_layer=norm_layer, act_layer=None)
    if same_shape:
        return nn.Identity()
    return ZeroPadShortcut(in_chs, out_chs, stride)
