"""The context module of Yu & Koltun 2016 ("Multi-Scale Context Aggregation by Dilated Convolutions", Sec. 3,
Table 1).

The basic module takes C feature maps (the front-end's class scores) and returns C: seven 3x3 convolutions
with dilations 1, 1, 2, 4, 8, 16, 1, each followed by the truncation max(., 0), and an eighth 1x1 convolution
without truncation. Each 3x3 adds ``2 * rate`` to the receptive field: 3, 5, 9, 17, 33, 65, 67 (and 67 after
the 1x1), so the field grows exponentially with depth while every layer keeps the resolution and C channels.

"Standard initialization procedures do not readily work for the module", so every layer starts as the
identity, ``k^b(t, a) = 1[t = 0] 1[a = b]``: the centre tap of filter b reads input channel b, every other
weight and the biases are 0. At that initialisation the module passes its input through the truncations
unchanged wherever the input is non-negative (it returns max(x, 0)), and training moves it from there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnlab.errors import check_count
from cnnlab.layers.conv_bn_act import ConvBnAct

CONTEXT_RATES = (1, 1, 2, 4, 8, 16, 1)
"""The dilations of the basic context module's seven 3x3 layers (Table 1)."""


class ContextModule(nn.Sequential):
    """``conv1``..``conv7``: 3x3 conv + ReLU at ``rates`` (``chs -> chs``, biases, no normalisation, as in the
    paper); ``conv8``: 1x1 conv without truncation. ``identity_init`` (default) starts every layer as the
    identity (:meth:`init_identity`)."""

    def __init__(self, chs: int, rates: Sequence[int] = CONTEXT_RATES, *, identity_init: bool = True) -> None:
        super().__init__()
        check_count("ContextModule chs", chs, minimum=1)
        for i, r in enumerate(rates, start=1):
            self.add_module(f"conv{i}", ConvBnAct(chs, chs, 3, dilation=r, norm_layer=None))
        self.add_module(f"conv{len(rates) + 1}", ConvBnAct(chs, chs, 1, norm_layer=None, act_layer=None))
        self.identity_init = identity_init
        if identity_init:
            self.init_identity()

    @torch.no_grad()
    def init_identity(self) -> None:
        """Every conv to the identity: weight 1 at the centre tap of its own channel, 0 elsewhere; bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and not m.weight.is_meta:
                m.weight.zero_()
                c = m.kernel_size[0] // 2
                m.weight[:, :, c, c].copy_(torch.eye(m.out_channels, m.in_channels))
                m.bias.zero_()
