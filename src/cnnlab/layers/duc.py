"""Dense upsampling convolution (Wang et al. 2018, "Understanding Convolution for Semantic Segmentation",
Sec. 3.1, Fig. 1).

Instead of interpolating a coarse score map, DUC *learns* the upsampling: a convolution on the h x w feature
map outputs ``d^2 * L`` channels (``d`` the downsampling factor, ``L`` the classes), which are reshaped into an
``(h * d) x (w * d)`` map of ``L`` channels, so each position of the feature map predicts a ``d x d`` block of
the full-resolution output. The reshape is ``nn.PixelShuffle(d)`` (Shi et al. 2016): output channel ``c`` at
``(y * d + i, x * d + j)`` is input channel ``c * d^2 + i * d + j`` at ``(y, x)``. The paper (and its TuSimple
code) uses a 3x3 kernel.
"""

from __future__ import annotations

from torch import Tensor, nn

from cnnlab.errors import check_count
from cnnlab.layers.conv_bn_act import same_padding


class DUC(nn.Module):
    """``conv`` (``in_chs -> scale^2 * out_chs``, ``kernel_size``, size-keeping padding, with a bias), then
    ``shuffle`` (``nn.PixelShuffle(scale)``): N x in_chs x h x w -> N x out_chs x (h * scale) x (w * scale)."""

    def __init__(self, in_chs: int, out_chs: int, scale: int, *, kernel_size: int = 3) -> None:
        super().__init__()
        self.scale = check_count("DUC scale", scale, minimum=1)
        check_count("DUC out_chs", out_chs, minimum=1)
        self.conv = nn.Conv2d(in_chs, scale * scale * out_chs, kernel_size, padding=same_padding(kernel_size))
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        return self.shuffle(self.conv(x))  # N x out_chs x (h * scale) x (w * scale)


class DUCHead(nn.Module):
    """DUC as a segmentation head: ``fc`` is a :class:`DUC` to ``num_classes`` at ``scale`` times the feature
    map's size (the model's output stride, so that no interpolation remains), on the features as they are
    (``pre_logits=True`` returns them, ``in_chs`` wide); ``num_classes=0`` leaves it out."""

    def __init__(self, in_chs: int, num_classes: int, *, scale: int = 8, kernel_size: int = 3) -> None:
        super().__init__()
        self.in_chs, self.scale, self.kernel_size = in_chs, scale, kernel_size
        self.fc: nn.Module = nn.Identity()
        self.reset(num_classes)

    @property
    def hidden_size(self) -> int:
        return self.in_chs

    def reset(self, num_classes: int) -> None:
        """A fresh DUC for ``num_classes`` (0: none), on the device and in the dtype of the old one."""
        old = next(self.fc.parameters(), None)
        duc = DUC(self.in_chs, num_classes, self.scale, kernel_size=self.kernel_size) if num_classes else nn.Identity()
        self.fc = (duc if old is None else duc.to(device=old.device, dtype=old.dtype)).train(self.training)

    def forward(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return x if pre_logits else self.fc(x)
