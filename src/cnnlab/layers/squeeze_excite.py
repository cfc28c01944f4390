"""Squeeze-and-excitation (Hu et al. 2018, "Squeeze-and-Excitation Networks", Fig. 1-3).

Squeeze: global average pooling to one value per channel. Excitation: a bottleneck of two fully
connected layers (C -> C/r -> C, ReLU between) and a sigmoid give one gate per channel, which rescales
the input. The paper's default reduction is r = 16 (Table 10); in a residual block it sits on the
residual branch before the addition (Fig. 3). The FC layers are 1x1 convs here, as in timm, which is the
same arithmetic on an N x C x 1 x 1 tensor.
"""

from __future__ import annotations

from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError, check_count
from cnnlab.layers.conv_bn_act import create_act
from cnnlab.layers.types import LayerFactory


class SqueezeExcite(nn.Module):
    """``x * sigmoid(fc2(relu(fc1(mean(x)))))``, with ``channels // reduction`` hidden units (which must be
    at least 1: a reduction above the width leaves no bottleneck)."""

    def __init__(
        self,
        channels: int,
        *,
        reduction: int = 16,
        act_layer: LayerFactory = nn.ReLU,
        gate_layer: LayerFactory = nn.Sigmoid,
    ) -> None:
        super().__init__()
        hidden = channels // check_count("SqueezeExcite reduction", reduction, minimum=1)
        if hidden < 1:
            raise ModelArgumentError(
                f"SqueezeExcite: reduction {reduction} leaves {channels} // {reduction} = {hidden} hidden units; "
                f"use a reduction of at most {channels}"
            )
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = create_act(act_layer)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = gate_layer()

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)  # N x C x 1 x 1: squeeze
        s = self.gate(self.fc2(self.act(self.fc1(s))))  # excitation
        return x * s
