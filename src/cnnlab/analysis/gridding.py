"""The gridding effect of stacked dilated convolutions, seen through the real layers' gradients.

Wang et al. 2018, "Understanding Convolution for Semantic Segmentation" (Hybrid Dilated Convolution, Sec. 3.3):
a stack of 3x3 convs dilated by 2, 2, 2 sees a 13x13 window but only one pixel in four of it, a checkerboard
of holes; rates 1, 2, 5 cover their 17x17 window completely. :func:`gridding_map` measures this: every weight
of the stack is set to one (so no path cancels another and every activation stays positive), and the
gradient of the centre output unit with respect to the input counts the paths from each input pixel. A pixel
with no path is a hole.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnlab.analysis.receptive_field import stack_field
from cnnlab.errors import AnalysisError, CnnlabWarning
from cnnlab.layers.dilated import DilatedConvStack, HdcReport, check_rates, hdc_check

MAX_MEASURED = 2**23
"""The most layer-pixels (layers x map side^2) that :func:`gridding_map` measures: its float64 backward pass
through the real layers then needs up to about 1 GB and a few seconds."""


@dataclass(frozen=True)
class GriddingMap:
    """Paths from each input pixel to the centre output of a dilated stack (``paths``: field x field + margin).

    ``field`` is the theoretical receptive field ``1 + (k - 1) * sum(rates)``; ``holes`` counts the pixels
    inside it that no path reaches; ``layers`` says which layers were measured; ``hdc`` is
    :func:`cnnlab.layers.dilated.hdc_check`'s answer (``verdicts`` in words).
    """

    rates: tuple[int, ...]
    kernel_size: int
    field: int
    paths: np.ndarray
    layers: str
    hdc: HdcReport

    @property
    def verdicts(self) -> str:
        return str(self.hdc)

    @property
    def window(self) -> np.ndarray:
        """The paths inside the theoretical field."""
        m = (self.paths.shape[0] - self.field) // 2
        return self.paths[m : m + self.field, m : m + self.field]

    @property
    def holes(self) -> int:
        return int((self.window == 0).sum())

    @property
    def covered(self) -> int:
        return int((self.window > 0).sum())

    def text(self) -> str:
        """The map: ``#`` a pixel that reaches the centre output, ``.`` a hole, ``o`` the centre itself."""
        c = self.field // 2
        return "\n".join(
            " ".join("o" if (y, x) == (c, c) else "#" if v else "." for x, v in enumerate(row))
            for y, row in enumerate(self.window)
        )


def dilated_stack(rates: Sequence[int], *, kernel_size: int = 3, chs: int = 1) -> tuple[nn.Module, str]:
    """The stack to measure, :class:`~cnnlab.layers.dilated.DilatedConvStack`, and its description."""
    with warnings.catch_warnings():  # a stack with holes warns on purpose; here the holes are the subject
        warnings.simplefilter("ignore", CnnlabWarning)
        return DilatedConvStack(chs, list(rates), kernel_size=kernel_size), "cnnlab.layers.dilated.DilatedConvStack"


def path_counts(stack: nn.Module, *, size: int, in_chans: int) -> np.ndarray:
    """Paths from every input pixel to the centre output unit: the input gradient with every weight one."""
    ones = copy.deepcopy(stack).eval()
    with torch.no_grad():
        for m in ones.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0)
                if m.bias is not None:
                    m.bias.zero_()
    x = torch.ones(1, in_chans, size, size, dtype=torch.float64, requires_grad=True)
    y = ones.double()(x)
    c = y.shape[-1] // 2
    y[0, :, c, c].sum().backward()
    return x.grad[0].sum(0).numpy()  # type: ignore[union-attr]


def gridding_map(
    rates: Sequence[int], *, kernel_size: int = 3, margin: int = 2, group: int | None = None
) -> GriddingMap:
    """Measure which input pixels reach the centre output of a 3x3 stack dilated by ``rates``; the stack may
    hold at most :data:`MAX_MEASURED` layer-pixels. ``group`` goes to :func:`~cnnlab.layers.dilated.hdc_check`
    (default: the rule per group of the repeated cycle)."""
    rates = check_rates(rates, kernel_size)
    field = stack_field([kernel_size] * len(rates), dilations=list(rates))
    side = field + 2 * margin
    if len(rates) * side**2 > MAX_MEASURED:
        raise AnalysisError(
            f"the gridding map of rates {list(rates)} runs a float64 backward pass over {len(rates)} x {side}x{side} "
            f"= {len(rates) * side**2:,} layer-pixels; the limit is {MAX_MEASURED:,} (about 1 GB). Use fewer or "
            "smaller rates; hdc_check(rates) gives the verdicts without measuring."
        )
    stack, layers = dilated_stack(rates, kernel_size=kernel_size)
    first = next(m for m in stack.modules() if isinstance(m, nn.Conv2d))
    paths = path_counts(stack, size=side, in_chans=first.in_channels)
    return GriddingMap(rates, kernel_size, field, paths, layers, hdc_check(rates, kernel_size, group=group))
