"""The inverted residual with a linear bottleneck (Sandler et al. 2018, "MobileNetV2", Sec. 3.3, Table 1).

1x1 expansion by ``t`` with ReLU6, 3x3 depthwise with ReLU6, then a *linear* 1x1 projection back to a narrow
width (a ReLU there would destroy information in the low-dimensional space, Sec. 3.2). The shortcut joins the
narrow ends, and only when the stride is 1 and the widths agree. With ``t = 1`` the expansion is left out.
"""

from __future__ import annotations

from torch import Tensor, nn

from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.types import LayerFactory


class InvertedResidual(nn.Module):
    """``conv_pw`` (1x1 expand, absent when ``expand_ratio == 1``), ``conv_dw`` (3x3 depthwise),
    ``conv_pwl`` (1x1 linear), plus the input when the shapes agree."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        stride: int = 1,
        expand_ratio: int = 6,
        act_layer: LayerFactory = nn.ReLU6,
    ) -> None:
        super().__init__()
        mid = in_chs * expand_ratio
        self.in_chs, self.out_chs = in_chs, out_chs
        self.use_shortcut = stride == 1 and in_chs == out_chs
        self.conv_pw = ConvBnAct(in_chs, mid, 1, act_layer=act_layer) if expand_ratio != 1 else nn.Identity()
        self.conv_dw = ConvBnAct(mid, mid, 3, stride=stride, groups=mid, act_layer=act_layer)
        self.conv_pwl = ConvBnAct(mid, out_chs, 1, act_layer=None)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_pwl(self.conv_dw(self.conv_pw(x)))
        return out + x if self.use_shortcut else out
