"""A fixed first layer of Gabor filters: the S1 layer of Serre et al. 2007 ("Robust Object Recognition with
Cortex-Like Mechanisms", IEEE PAMI 29(3), Sec. 2.1 and Table 1).

Each filter is ``F(x, y) = exp(-(x0^2 + gamma^2 y0^2) / (2 sigma^2)) cos(2 pi x0 / lambda)`` with
``x0 = x cos(theta) + y sin(theta)`` and ``y0 = -x sin(theta) + y cos(theta)`` (x to the right, y down, the origin
at the kernel's centre). The paper's S1 bank has sizes 7 to 37 px in steps of 2 and four orientations (0, 45, 90
and 135 degrees), aspect ratio gamma = 0.3, and per size ``s`` a wavelength ``lambda = 2 s / div`` with
``div = 4 - 0.025 (s - 7)`` and an effective width ``sigma = 0.8 lambda`` (Table 1: s = 7 -> sigma 2.8,
lambda 3.5; 9 -> 3.6, 4.6; 11 -> 4.5, 5.6). As in the authors' code, a filter is zero outside the disc of
diameter ``s`` and is normalised to zero mean and unit norm.

Departures: sizes that fit 28-64 px inputs (5, 7, 9, 11 by default; 5 px extrapolates the formulas below the
paper's smallest size); the mean is removed over the disc only, so that the support stays the disc; the layer is
linear (the paper's S1 unit is ``|<x, F>| / |x|``: a stem's batch norm and ReLU follow it instead); a
multi-channel input is filtered as its channel mean (the paper's images are grey).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError, check_count

SERRE_GAMMA = 0.3
"""The spatial aspect ratio of every S1 filter (Serre et al. 2007, Table 1)."""

GABOR_SIZES = (5, 7, 9, 11)
"""The default filter sizes in pixels: odd sizes that fit a 28-64 px input (the paper's S1: 7 to 37)."""

GABOR_ORIENTATIONS = 4
"""The default number of orientations, as in the paper: 0, 45, 90 and 135 degrees."""


def serre_wavelength(size: int) -> float:
    """``lambda = 2 s / div``, ``div = 4 - 0.025 (s - 7)``: the paper's 4 : -0.05 : 3.2 over s = 7 : 2 : 37."""
    return 2 * size / (4 - 0.025 * (size - 7))


def serre_sigma(size: int) -> float:
    """The effective width ``sigma = 0.8 lambda`` of the S1 filter of ``size`` pixels."""
    return 0.8 * serre_wavelength(size)


def _offsets(size: int) -> Tensor:
    """Pixel offsets from the centre of a ``size``-long axis, on the CPU (the bank is computed there even while a
    model is built on the meta device)."""
    return torch.arange(size, dtype=torch.float64, device="cpu") - (size - 1) / 2


def gabor_kernel(size: int, theta: float, *, sigma: float, wavelength: float, gamma: float = SERRE_GAMMA) -> Tensor:
    """The ``size`` x ``size`` Gabor function of the module docstring at integer offsets from the centre
    (float64), with nothing masked or normalised; row index = y (down), column index = x (right)."""
    r = _offsets(size)
    y, x = torch.meshgrid(r, r, indexing="ij")
    x0 = x * math.cos(theta) + y * math.sin(theta)
    y0 = -x * math.sin(theta) + y * math.cos(theta)
    return torch.exp(-(x0**2 + gamma**2 * y0**2) / (2 * sigma**2)) * torch.cos(2 * math.pi * x0 / wavelength)


def s1_filter(size: int, theta: float, *, gamma: float = SERRE_GAMMA) -> Tensor:
    """One S1 filter: :func:`gabor_kernel` with the paper's sigma and lambda for ``size``, zero outside the disc
    of diameter ``size``, zero mean and unit norm over the disc (float64)."""
    g = gabor_kernel(size, theta, sigma=serre_sigma(size), wavelength=serre_wavelength(size), gamma=gamma)
    r = _offsets(size)
    disc = (r[:, None] ** 2 + r[None, :] ** 2) <= (size / 2) ** 2
    g = torch.where(disc, g - (g * disc).sum() / disc.sum(), 0.0)
    return g / g.norm()


def gabor_bank(
    sizes: Sequence[int] = GABOR_SIZES, orientations: int = GABOR_ORIENTATIONS, *, gamma: float = SERRE_GAMMA
) -> Tensor:
    """The S1 filters as ``len(sizes) * orientations`` x ``k`` x ``k`` (float64), ``k`` the largest size, each
    filter centred in its square; size-major (all orientations of the first size, then the next), orientations
    ``pi * j / orientations`` (0, 45, 90, 135 degrees for four)."""
    k = max(sizes)
    bank = torch.zeros(len(sizes) * orientations, k, k, dtype=torch.float64, device="cpu")
    for i, size in enumerate(sizes):
        lo = (k - size) // 2
        for j in range(orientations):
            bank[i * orientations + j, lo : lo + size, lo : lo + size] = s1_filter(size, math.pi * j / orientations,
                                                                                    gamma=gamma)  # fmt: skip
    return bank


class GaborConv2d(nn.Module):
    """A convolution with a fixed bank of Gabor filters (Serre et al. 2007's S1 layer; see the module docstring):
    ``len(sizes) * orientations`` output channels, "same" padding, no bias. The filters are a buffer, not a
    parameter: nothing trains them, and a checkpoint holds them as it holds batch-norm statistics.

    Called as a stem, ``GaborConv2d(in_chs, out_chs)`` (the ``stem_layer`` of ``cifar_vgg``, by name ``"gabor"``):
    ``out_chs`` must then be the number of filters (16 for the defaults).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int | None = None,
        *,
        sizes: Sequence[int] = GABOR_SIZES,  # odd filter sizes in pixels (the paper's S1: 7, 9, ..., 37)
        orientations: int = GABOR_ORIENTATIONS,  # evenly spaced over 180 degrees (the paper: 0, 45, 90, 135)
        stride: int = 1,
        gamma: float = SERRE_GAMMA,  # spatial aspect ratio (Table 1)
    ) -> None:
        super().__init__()
        check_count("GaborConv2d in_chs", in_chs, minimum=1)
        check_count("GaborConv2d orientations", orientations, minimum=1)
        self.stride = check_count("GaborConv2d stride", stride, minimum=1)
        sizes = tuple(sizes)
        if not sizes or any(not isinstance(s, int) or s < 1 or s % 2 == 0 for s in sizes):
            raise ModelArgumentError(f"GaborConv2d: sizes must be odd pixel counts such as (5, 7, 9, 11); got {sizes}")
        n = len(sizes) * orientations
        if out_chs is not None and out_chs != n:
            raise ModelArgumentError(
                f"GaborConv2d: {len(sizes)} sizes x {orientations} orientations make {n} filters, but {out_chs} "
                f"output channels were asked for; choose sizes and orientations whose product is {out_chs}"
            )
        self.in_chs, self.out_chs, self.sizes, self.orientations = in_chs, n, sizes, orientations
        self.kernel_size = max(sizes)
        bank = gabor_bank(sizes, orientations, gamma=gamma)
        # each input channel gets 1/in_chs of the filter: the bank applied to the channel mean
        weight = (bank[:, None] / in_chs).repeat(1, in_chs, 1, 1)
        here = torch.empty(0).device  # the device models are being built on (meta inside cnnlab's on_meta)
        self.register_buffer("weight", weight.to(device=here, dtype=torch.get_default_dtype()))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, stride=self.stride, padding=self.kernel_size // 2)

    def extra_repr(self) -> str:
        return f"{self.in_chs}, {self.out_chs}, sizes={self.sizes}, orientations={self.orientations}, fixed"
