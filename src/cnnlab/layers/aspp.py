"""Atrous Spatial Pyramid Pooling (Chen, Papandreou, Schroff & Adam 2017, "Rethinking Atrous Convolution for
Semantic Image Segmentation", Sec. 3.3, Fig. 5).

Parallel branches look at the same feature map at several scales: "one 1x1 convolution and three 3x3
convolutions with rates = (6, 12, 18) when output stride = 16 (all with 256 filters and batch normalization)"
(the rates double at output stride 8: 12, 24, 36), and *image-level features*: global average pooling, a 1x1
conv with 256 filters and batch normalization, bilinearly upsampled back to the map, because a 3x3 filter
whose rate approaches the map's size degenerates to its centre weight (Sec. 3.3, Fig. 4). "The resulting
features from all the branches are then concatenated and pass through another 1x1 convolution (also with 256
filters and batch normalization)". torchvision adds dropout 0.5 after that projection.

:class:`DeepLabHead` is DeepLabV3's head on an ASPP: torchvision adds a 3x3 conv-BN-ReLU (256 channels) between
the ASPP and the final 1x1 classifier, which the paper does not have (``refine=False`` leaves it out).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError, check_count, check_drop_rate
from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.fcn_head import make_conv_fc, upsample
from cnnlab.layers.types import LayerFactory


class ImagePooling(nn.Module):
    """Image-level features: ``pool`` (global average), ``conv`` (1x1 conv-BN-ReLU), upsampled to the map."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        norm_layer: LayerFactory | None = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = ConvBnAct(in_chs, out_chs, 1, norm_layer=norm_layer, act_layer=act_layer)

    def forward(self, x: Tensor) -> Tensor:
        return upsample(self.conv(self.pool(x)), x.shape[-2:])  # N x out_chs x H x W, constant over H x W


class ASPP(nn.Module):
    """``branch1x1``, one dilated 3x3 conv-BN-ReLU per rate (``branch3x3[i]`` at ``rates[i]``), the
    ``image_pool`` branch, concatenated, then ``project`` (1x1 conv-BN-ReLU to ``out_chs``) and ``drop``.

    Every 3x3 branch pads by its rate, so the map keeps its size. ``image_pooling=False`` drops the
    image-level branch (the ablation of the paper's Table 5).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int = 256,  # "all with 256 filters"
        rates: Sequence[int] = (6, 12, 18),  # at output stride 16; (12, 24, 36) at 8
        *,
        image_pooling: bool = True,
        drop_rate: float = 0.5,  # torchvision's dropout after the projection
        norm_layer: LayerFactory | None = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        if isinstance(rates, str | int) or not all(isinstance(r, int) and not isinstance(r, bool) for r in rates):
            raise ModelArgumentError(f"ASPP rates must be a list of integers >= 1, got {rates!r}")
        for r in rates:
            check_count("ASPP rate", r, minimum=1)
        layer = {"norm_layer": norm_layer, "act_layer": act_layer}
        self.rates = tuple(rates)
        self.branch1x1 = ConvBnAct(in_chs, out_chs, 1, **layer)
        self.branch3x3 = nn.ModuleList(ConvBnAct(in_chs, out_chs, 3, dilation=r, **layer) for r in self.rates)
        self.image_pool = ImagePooling(in_chs, out_chs, **layer) if image_pooling else None
        branches = 1 + len(self.rates) + int(image_pooling)
        self.project = ConvBnAct(branches * out_chs, out_chs, 1, **layer)
        self.drop = nn.Dropout(check_drop_rate("ASPP drop_rate", drop_rate))

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1x1(x), *(branch(x) for branch in self.branch3x3)]
        if self.image_pool is not None:
            branches.append(self.image_pool(x))
        x = torch.cat(branches, dim=1)  # N x (branches * out_chs) x H x W
        return self.drop(self.project(x))  # N x out_chs x H x W


class DeepLabHead(nn.Module):
    """DeepLabV3's head: ``aspp``, ``conv`` (torchvision's 3x3 conv-BN-ReLU; ``refine=False``: none), ``fc``
    (1x1 conv to ``num_classes``). ``forward(x, pre_logits=True)`` returns the ``chs``-wide features before
    ``fc``, and so does ``forward(x)`` with ``num_classes=0``.
    """

    def __init__(
        self,
        in_chs: int,
        num_classes: int,
        *,
        rates: Sequence[int] = (12, 24, 36),  # torchvision's, output stride 8 (the paper's 6, 12, 18 doubled)
        chs: int = 256,
        refine: bool = True,  # torchvision's 3x3 conv after the ASPP (not in the paper)
        image_pooling: bool = True,
        drop_rate: float = 0.5,
        norm_layer: LayerFactory | None = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        self.hidden_size = chs
        layer = {"norm_layer": norm_layer, "act_layer": act_layer}
        self.aspp = ASPP(in_chs, chs, rates=rates, image_pooling=image_pooling, drop_rate=drop_rate, **layer)
        self.conv = ConvBnAct(chs, chs, 3, **layer) if refine else nn.Identity()
        self.fc = make_conv_fc(chs, num_classes)

    def reset(self, num_classes: int) -> None:
        """A fresh ``fc`` for ``num_classes`` (0: none), on the device and in the dtype of the head."""
        self.fc = make_conv_fc(self.hidden_size, num_classes, like=self.aspp)

    def forward(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.conv(self.aspp(x))  # N x chs x h x w
        return x if pre_logits else self.fc(x)
