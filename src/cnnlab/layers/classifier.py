"""The classifier head: global average pooling, dropout, one linear layer.

Global average pooling in place of fully connected layers follows Network in Network (Lin et al. 2014) and
GoogLeNet (Szegedy et al. 2015, Sec. 5: +0.6% top-1 and far fewer parameters than AlexNet's FC stack).
"""

from __future__ import annotations

from torch import Tensor, nn

from cnnlab.errors import check_drop_rate


def make_fc(in_features: int, num_classes: int, like: nn.Module | None = None) -> nn.Module:
    """A fresh ``nn.Linear(in_features, num_classes)`` (an identity for 0 classes), on the device and in
    the dtype of ``like``'s parameters when given (to replace a classifier in place)."""
    fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()
    old = next(like.parameters(), None) if like is not None else None
    return fc if old is None else fc.to(device=old.device, dtype=old.dtype)


class ClassifierHead(nn.Module):
    """``global average pool -> flatten -> dropout -> fc``; with ``num_classes=0`` the fc is an identity.

    ``forward(x, pre_logits=True)`` returns the pooled features without the fc.
    """

    def __init__(self, in_features: int, num_classes: int, *, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.in_features = in_features
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.drop = nn.Dropout(check_drop_rate("ClassifierHead drop_rate", drop_rate))
        self.fc = make_fc(in_features, num_classes)

    def reset(self, num_classes: int) -> None:
        """Replace the fc by a freshly initialised one with ``num_classes`` outputs (0: none).

        The new fc lives on the device and in the dtype of the old one.
        """
        self.fc = make_fc(self.in_features, num_classes, like=self.fc)

    def forward(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.drop(self.flatten(self.global_pool(x)))  # N x C
        return x if pre_logits else self.fc(x)
