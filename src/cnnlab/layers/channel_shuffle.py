"""Channel shuffle (Zhang et al. 2018, "ShuffleNet", Sec. 3.1, Fig. 1).

Stacked group convolutions let each output group see only one input group. Shuffling the channels between
them fixes that: reshape the C channels to (g, C/g), transpose to (C/g, g) and flatten, so that every new
group holds one channel from each old group. Shuffling with ``C // g`` groups undoes a shuffle with ``g``.
"""

from __future__ import annotations

from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError, check_count


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Channel ``i * (C/g) + j`` of the input becomes channel ``j * g + i`` of the output."""
    n, c, h, w = x.shape
    if groups < 1 or (isinstance(c, int) and c % groups):  # c is symbolic while torch.fx traces
        raise ModelArgumentError(f"channel_shuffle: {c} channels do not split into {groups} groups")
    x = x.view(n, groups, c // groups, h, w)
    return x.transpose(1, 2).reshape(n, c, h, w)  # N x C/g x g x H x W, flattened


class ChannelShuffle(nn.Module):
    """:func:`channel_shuffle` as a module."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = check_count("ChannelShuffle groups", groups, minimum=1)

    def forward(self, x: Tensor) -> Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
