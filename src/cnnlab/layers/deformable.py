"""Deformable convolution (Dai et al. 2017, "Deformable Convolutional Networks", Sec. 2.1; v2: Zhu et al.
2019, "Deformable ConvNets v2", Sec. 3.1).

Each of the k x k kernel points samples the input at its regular grid position plus a learned offset
(dy, dx), bilinearly. The offsets come from an ordinary conv over the same input with the same kernel size,
stride, padding and dilation and ``2 * offset_groups * k * k`` output channels; it starts at zero, so the layer
starts as the plain conv. v2 adds a modulation mask: ``offset_groups * k * k`` more channels through a
sigmoid scale each sampled value (zero-initialised here too, so they start at 0.5, as in the v2 paper).
The sampling is :func:`torch.nn.functional.grid_sample` (bilinear, zeros outside the input) at every kernel
point's displaced position, followed by one matrix product with the weights: the same arithmetic as
``torchvision.ops.deform_conv2d`` (the reference the tests compare against), about 6 times faster in a
training step on the CPU (a 64-channel 3x3 at 11x11, batch 64, forward and backward: 82 ms against 487 ms on
one core), where torchvision's kernel loops over output pixels.
"""

from __future__ import annotations

import functools
import math
from contextlib import nullcontext
from typing import ClassVar

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError, NonFiniteError, check_count
from cnnlab.layers.conv_bn_act import check_conv, same_padding
from cnnlab.layers.types import Size2, pair


def deform_conv2d(
    x: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    mask: Tensor | None,
) -> Tensor:
    """A deformable conv with ``torchvision.ops.deform_conv2d``'s arguments and layout: ``offset`` is
    N x 2*G*kh*kw x H' x W' ((dy, dx) per kernel point, G offset groups), ``mask`` N x G*kh*kw x H' x W' or None,
    and the conv groups follow from ``weight``'s shape. Non-finite offsets are refused (``NonFiniteError``): they
    would sample nowhere (and crash torchvision's CPU kernel). A NaN input makes NaN offsets; a NaN mask only
    scales, so it gives NaN outputs like any other layer and is left to the trainer's NaN check.

    It computes in float32 whatever the autocast state (as torchvision's autocast kernel does), and returns the
    input's dtype: sampling positions in bfloat16 would be off by a quarter pixel and more on a 64-pixel map."""
    if not offset.is_meta and not torch.isfinite(offset).all():  # meta: the analyzer, no values
        out_chs, _, kh, kw = weight.shape
        source = "its input holds NaN or Inf" if not torch.isfinite(x).all() else "its offset conv's weights do"
        raise NonFiniteError(
            f"DeformConv2d ({x.shape[1]} -> {out_chs} channels, {kh}x{kw}): the sampling offsets hold NaN or Inf "
            f"because {source}; there is nowhere to sample. Check the input data, or lower the learning rate if "
            "training diverged."
        )
    n, in_chs, out_h, out_w = x.shape[0], x.shape[1], offset.shape[-2], offset.shape[-1]
    out_chs, group_chs, kh, kw = weight.shape
    groups = in_chs // group_chs
    exact = torch.autocast(x.device.type, enabled=False) if x.device.type in ("cpu", "cuda") else nullcontext()
    with exact:  # no autocast inside (the meta device of the analyzer has none)
        x32, offset32, weight32 = x.float(), offset.float().contiguous(), weight.float()
        mask32 = None if mask is None else mask.float().contiguous()
        columns = sampled_columns(x32, offset32, (kh, kw), stride, padding, dilation, mask32)  # N x C*kh*kw x H'W'
        columns = columns.view(n, groups, group_chs * kh * kw, out_h * out_w)
        out = torch.matmul(weight32.reshape(groups, out_chs // groups, -1), columns)  # N x groups x C'/groups x H'W'
        out = out.reshape(n, out_chs, out_h, out_w)
        if bias is not None:
            out = out + bias.float().view(1, -1, 1, 1)
    return out.to(x.dtype)


def sampled_columns(
    x: Tensor,
    offset: Tensor,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    mask: Tensor | None,
) -> Tensor:
    """The deformable im2col: N x C*kh*kw x H'*W', channel-major, each input channel's kh*kw samples (scaled by
    the mask) at output pixel (i, j) taken at ``(i*stride - pad + ki*dilation + dy, j*stride - pad + kj*dilation
    + dx)``, bilinearly, zero outside the input (torchvision's convention)."""
    n, chs, h, w = x.shape
    (kh, kw), (out_h, out_w) = kernel_size, offset.shape[-2:]
    points = kh * kw
    groups = offset.shape[1] // (2 * points)
    arange = functools.partial(torch.arange, device=x.device, dtype=offset.dtype)
    rows = arange(kh).repeat_interleave(kw).view(points, 1, 1) * dilation[0] + (
        arange(out_h) * stride[0] - padding[0]
    ).view(1, out_h, 1)  # kh*kw x H' x 1
    cols = arange(kw).repeat(kh).view(points, 1, 1) * dilation[1] + (arange(out_w) * stride[1] - padding[1]).view(
        1, 1, out_w
    )  # kh*kw x 1 x W'
    displaced = offset.reshape(n * groups, points, 2, out_h, out_w)
    py, px = rows + displaced[:, :, 0], cols + displaced[:, :, 1]  # N*G x kh*kw x H' x W', in pixels
    grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1)  # align_corners=False coordinates
    sampled = F.grid_sample(
        x.reshape(n * groups, chs // groups, h, w), grid.view(n * groups, points * out_h, out_w, 2),
        mode="bilinear", padding_mode="zeros", align_corners=False,
    )  # fmt: skip  # N*G x C/G x kh*kw*H' x W'
    sampled = sampled.view(n, groups, chs // groups, points, out_h * out_w)
    if mask is not None:
        sampled = sampled * mask.reshape(n, groups, 1, points, out_h * out_w)
    return sampled.reshape(n, chs * points, out_h * out_w)


torch.fx.wrap("deform_conv2d")  # one leaf node in torch.fx graphs: its checks cannot be traced


class DeformConv2d(nn.Module):
    """A deformable conv, called like ``nn.Conv2d`` (so it can be a block's ``conv_layer``); its ``weight``
    and ``bias`` have the shapes and names of ``nn.Conv2d``'s, so an ordinary conv's weights load into it.

    Args:
        offset_groups: channel groups that share one offset field (``in_chs`` must divide by it).
        modulated: add the v2 modulation mask.
    """

    new_on_load: ClassVar[tuple[str, ...]] = ("offset", "mask")
    """Submodules that an ordinary conv's weights lack: :func:`cnnlab.load_pretrained` initialises them anew."""
    offset_modules: ClassVar[tuple[str, ...]] = ("offset", "mask")
    """Submodules that learn at the recipe's ``offset_lr_mult`` times its learning rate (:mod:`cnnlab.train.optim`):
    Dai et al. 2017 (Sec. 2.3) give the offset layers, zero-initialised, their own multiple of the learning rate."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: Size2 = 3,
        stride: Size2 = 1,
        padding: Size2 | None = None,
        dilation: Size2 = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        offset_groups: int = 1,
        modulated: bool = False,
    ) -> None:
        super().__init__()
        check_conv(in_chs, out_chs, kernel_size, dilation=dilation, groups=groups, layer="DeformConv2d")
        check_count("DeformConv2d offset_groups", offset_groups, minimum=1)
        if in_chs % offset_groups:
            raise ModelArgumentError(
                f"DeformConv2d: {offset_groups} offset groups must divide the {in_chs} input channels"
            )
        kh, kw = pair(kernel_size)
        self.stride, self.dilation = pair(stride), pair(dilation)
        self.padding = same_padding((kh, kw), dilation) if padding is None else pair(padding)
        self.weight = nn.Parameter(torch.empty(out_chs, in_chs // groups, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_chs)) if bias else None
        geometry = {"stride": self.stride, "padding": self.padding, "dilation": self.dilation}
        points = offset_groups * kh * kw
        self.offset = nn.Conv2d(in_chs, 2 * points, (kh, kw), **geometry)
        self.mask = nn.Conv2d(in_chs, points, (kh, kw), **geometry) if modulated else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Conv2d``'s initialisation for the weight and bias; zeros for the offset and mask convs."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)
        self.zero_offsets()

    def zero_offsets(self) -> None:
        """Zero the offset and mask convs: no displacement, and a mask of sigmoid(0) = 0.5."""
        for conv in (self.offset, self.mask):
            if conv is not None:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        offset = self.offset(x)  # N x 2*G*kh*kw x H' x W': (dy, dx) per kernel point
        mask = self.mask(x).sigmoid() if self.mask is not None else None
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask)

    def extra_repr(self) -> str:
        out_chs, _, kh, kw = self.weight.shape
        return (
            f"{out_chs}, kernel_size={(kh, kw)}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, modulated={self.mask is not None}"
        )
