"""Fully convolutional prediction (Long, Shelhamer & Darrell 2015, "Fully Convolutional Networks for Semantic
Segmentation", Sec. 3.1-3.3).

A classifier's fully connected layer is a 1x1 convolution ("convolutionalization", Sec. 3.1): applied to a
feature map it gives one prediction per position, a coarse score map at the network's output stride, which
in-network upsampling brings back to the input's size (Sec. 3.3; the paper's deconvolution is initialised to
bilinear interpolation, and fixed bilinear interpolation is what torchvision and DeepLab use).

:class:`FCNHead` is the per-pixel classifier of torchvision's FCN models (and the auxiliary head of its
DeepLabV3): a 3x3 conv-BN-ReLU to a quarter of the channels, dropout, a 1x1 conv to the classes. Like every
dense head here it keeps the classifier contract of :class:`~cnnlab.layers.classifier.ClassifierHead`:
``forward(x, pre_logits=False)``, ``reset(num_classes)`` and ``hidden_size``; ``num_classes=0`` leaves out the
classifier alone, and the head returns its hidden features (as ``FcHead`` returns fc7's).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from cnnlab.errors import check_count, check_drop_rate
from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.types import LayerFactory


def upsample(x: Tensor, size: tuple[int, int] | list[int]) -> Tensor:
    """``x`` (N x C x h x w) resized to ``size`` (H, W) by bilinear interpolation, ``align_corners=False`` as in
    torchvision's segmentation models; resizing to the same size returns ``x``'s values unchanged."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def make_conv_fc(in_chs: int, num_classes: int, like: nn.Module | None = None) -> nn.Module:
    """A fresh 1x1 conv classifier ``in_chs -> num_classes`` with a bias (an identity for 0 classes), on the
    device and in the dtype of ``like``'s parameters when given: the fully connected layer, convolutionalized."""
    fc = nn.Conv2d(in_chs, num_classes, 1) if num_classes > 0 else nn.Identity()
    old = next(like.parameters(), None) if like is not None else None
    return fc if old is None else fc.to(device=old.device, dtype=old.dtype)


class FCNHead(nn.Module):
    """``conv`` (3x3 conv-BN-ReLU, ``in_chs -> hidden``), ``drop``, ``fc`` (1x1 conv to ``num_classes``).

    ``hidden`` defaults to ``in_chs // 4`` (torchvision: 512 on ResNet-50's 2048 channels, 256 as the
    auxiliary head on its 1024). ``forward(x, pre_logits=True)`` returns the ``hidden``-wide features before
    ``fc``, and so does ``forward(x)`` with ``num_classes=0``.
    """

    def __init__(
        self,
        in_chs: int,
        num_classes: int,
        *,
        hidden: int | None = None,  # None: in_chs // 4, torchvision's
        drop_rate: float = 0.1,  # torchvision's FCNHead
        norm_layer: LayerFactory | None = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        self.in_chs = check_count("FCNHead in_chs", in_chs, minimum=1)
        self.hidden_size = check_count("FCNHead hidden", hidden if hidden is not None else in_chs // 4, minimum=1)
        self.conv = ConvBnAct(in_chs, self.hidden_size, 3, norm_layer=norm_layer, act_layer=act_layer)
        self.drop = nn.Dropout(check_drop_rate("FCNHead drop_rate", drop_rate))
        self.fc = make_conv_fc(self.hidden_size, num_classes)

    def reset(self, num_classes: int) -> None:
        """A fresh ``fc`` for ``num_classes`` (0: none), on the device and in the dtype of the head."""
        self.fc = make_conv_fc(self.hidden_size, num_classes, like=self.conv)

    def forward(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.drop(self.conv(x))  # N x hidden x h x w
        return x if pre_logits else self.fc(x)
