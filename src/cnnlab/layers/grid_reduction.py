"""Efficient grid-size reduction (Szegedy et al. 2016, "Rethinking the Inception Architecture", Sec. 7, Fig. 10).

Pooling before an Inception module creates a representational bottleneck; expanding first and pooling after
costs three times as much. Instead stride-2 conv branches and a stride-2 pool run in parallel and are
concatenated: the grid halves while the width grows, at the cost of the convs alone. Inception-v4's stem,
Reduction-A/B and Inception-ResNet's reductions are the same idea with other widths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import torch
from torch import Tensor, nn

from cnnlab.layers.branches import ConvSpec, concat_channels, conv_chain
from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.types import LayerFactory

MAX_POOL_3X3_S2: LayerFactory = partial(nn.MaxPool2d, 3, stride=2)
"""The pool branch of every reduction in Inception-v3/v4: 3x3 max pool, stride 2, no padding ("valid")."""


class GridReduction(nn.Module):
    """Conv branches (each a :func:`~cnnlab.layers.branches.conv_chain` whose last conv has stride 2) and a
    stride-2 pool branch on the same input, concatenated: ``sum(branch widths) + in_chs`` channels.

    Args:
        in_chs: input channels.
        convs: branch name -> conv specs, in output order (the figure's, left to right).
        pool_name: the pool branch's name; ``pool_first`` puts it before the conv branches.
        pool_layer: the pool (3x3 max pool, stride 2).
        conv_layer: the conv unit.
    """

    def __init__(
        self,
        in_chs: int,
        convs: Mapping[str, Sequence[ConvSpec]],
        *,
        pool_name: str = "branch_pool",
        pool_first: bool = False,
        pool_layer: LayerFactory = MAX_POOL_3X3_S2,
        conv_layer: LayerFactory = ConvBnAct,
    ) -> None:
        super().__init__()
        self.conv_names, self.pool_name, self.pool_first = tuple(convs), pool_name, pool_first
        branches = {name: conv_chain(in_chs, specs, conv_layer=conv_layer) for name, specs in convs.items()}
        pool = {pool_name: pool_layer()}
        for name, branch in ((pool | branches) if pool_first else (branches | pool)).items():
            self.add_module(name, branch)
        self.out_chs = concat_channels(in_chs, *branches.values(), *pool.values())

    def forward(self, x: Tensor) -> Tensor:
        convs = [getattr(self, name)(x) for name in self.conv_names]  # each N x c x H/2 x W/2
        pooled = getattr(self, self.pool_name)(x)  # N x in_chs x H/2 x W/2
        return torch.cat([pooled, *convs] if self.pool_first else [*convs, pooled], dim=1)
