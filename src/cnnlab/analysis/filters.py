"""A network's first-layer filters, to set beside a fixed bank of Gabor filters (Serre et al. 2007): the first
conv of a model, its kernels as an array, and the Gabor bank to compare them with."""

from __future__ import annotations

import numpy as np
from torch import nn

from cnnlab.errors import AnalysisError
from cnnlab.layers.gabor import GABOR_ORIENTATIONS, GABOR_SIZES, GaborConv2d, gabor_bank


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d | GaborConv2d]:
    """(path, module) of the first convolution in ``model``'s module order (the stem in every cnnlab model):
    an ``nn.Conv2d`` or a fixed :class:`~cnnlab.layers.GaborConv2d`."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d | GaborConv2d):
            return name, m
    raise AnalysisError(f"{type(model).__name__} has no convolution (nn.Conv2d or GaborConv2d) to show")


def kernels(conv: nn.Conv2d | GaborConv2d) -> np.ndarray:
    """The conv's kernels as ``out x in x kh x kw`` float32 (a copy)."""
    return conv.weight.detach().float().cpu().numpy().copy()


def comparison_bank(conv: nn.Module) -> tuple[np.ndarray, str]:
    """The Gabor bank to set beside ``conv`` (its own when it is a GaborConv2d, else the default 5-11 px, four
    orientations) as ``n x k x k`` float32, and its caption."""
    fixed = isinstance(conv, GaborConv2d)
    sizes, orientations = (conv.sizes, conv.orientations) if fixed else (GABOR_SIZES, GABOR_ORIENTATIONS)
    caption = f"Gabor bank (Serre et al. 2007): {', '.join(map(str, sizes))} px x {orientations} orientations"
    return gabor_bank(sizes, orientations).float().numpy(), caption
