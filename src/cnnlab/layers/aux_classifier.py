"""Auxiliary classifiers on intermediate feature maps.

GoogLeNet (Szegedy et al. 2015, Sec. 6) adds two small classifiers on the outputs of inception (4a) and (4d)
"to encourage discrimination in the lower stages, increase the gradient signal that gets propagated back,
and provide additional regularization"; their losses are added with weight 0.3 in training and they are
discarded at inference. Inception-v3 (Szegedy et al. 2016, Sec. 4) keeps one, on the 17x17 grid, and finds
it acts as a regularizer (more so with batch norm in it).
"""

from __future__ import annotations

from torch import Tensor, nn

from cnnlab.errors import check_drop_rate
from cnnlab.layers.classifier import make_fc
from cnnlab.layers.conv_bn_act import ConvBnAct, create_act
from cnnlab.layers.types import LayerFactory


class AuxClassifier(nn.Module):
    """GoogLeNet's side classifier: average pool to 4x4, 1x1 conv (128), fc (1024) with ReLU, dropout 70%, fc.

    The paper pools with a 5x5 window at stride 3 (4x4 at the 14x14 grid of 224 inputs); like torchvision
    this pools adaptively to ``pool_size`` so that any input size works (identical at 224).
    """

    def __init__(
        self,
        in_chs: int,
        num_classes: int,
        *,
        conv_chs: int = 128,  # "1x1 convolution with 128 filters"
        hidden: int = 1024,  # "fully connected layer with 1024 units"
        pool_size: int = 4,  # the paper's 4x4 pooled grid
        drop_rate: float = 0.7,  # "dropout layer with 70% ratio of dropped outputs"
        conv_layer: LayerFactory = ConvBnAct,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.conv = conv_layer(in_chs, conv_chs, 1)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(conv_chs * pool_size * pool_size, hidden)
        self.act = create_act(act_layer)
        self.drop = nn.Dropout(check_drop_rate("AuxClassifier drop_rate", drop_rate))
        self.fc2 = make_fc(hidden, num_classes)

    def reset(self, num_classes: int) -> None:
        """A fresh last fc with ``num_classes`` outputs (0: the hidden features)."""
        self.fc2 = make_fc(self.fc1.out_features, num_classes, like=self.fc2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.flatten(self.conv(self.pool(x)))  # N x 2048
        return self.fc2(self.drop(self.act(self.fc1(x))))


class AuxClassifierV3(nn.Module):
    """Inception-v3's side classifier on the 17x17 grid: 5x5 average pool at stride 3 (to 5x5), 1x1 conv (128),
    5x5 conv (768, valid: to 1x1), global pool, fc. Needs a 17x17 input, which a 299x299 image gives.
    """

    min_input_size = 17
    """The smallest grid it takes: 5x5/3 pooling to 5x5, then the valid 5x5 conv."""

    def __init__(
        self,
        in_chs: int,
        num_classes: int,
        *,
        conv_chs: int = 128,
        hidden: int = 768,
        conv_layer: LayerFactory = ConvBnAct,
    ) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv0 = conv_layer(in_chs, conv_chs, 1)
        self.conv1 = conv_layer(conv_chs, hidden, 5, padding=0)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = make_fc(hidden, num_classes)

    def reset(self, num_classes: int) -> None:
        """A fresh fc with ``num_classes`` outputs (0: the pooled features)."""
        self.fc = make_fc(self.conv1.conv.out_channels, num_classes, like=self.fc)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(self.conv0(self.pool(x)))  # N x 768 x 1 x 1
        return self.fc(self.flatten(self.global_pool(x)))
