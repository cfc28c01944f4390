"""Convolution, batch norm, activation: the unit that every modern CNN is built from.

Batch norm after the convolution and before the non-linearity as in Ioffe & Szegedy 2015 (Sec. 3.2), which
is also why the convolution carries no bias when a norm follows it: the norm's shift replaces it.
"""

from __future__ import annotations

import functools
import inspect

from torch import nn

from cnnlab.errors import ModelArgumentError, check_count
from cnnlab.layers.types import LayerFactory, Size2, pair


def create_act(act_layer: LayerFactory) -> nn.Module:
    """Build an activation, in place where the layer supports it (``nn.ReLU(inplace=True)``) to save memory."""
    try:
        takes_inplace = _takes_inplace(act_layer)
    except TypeError:  # an unhashable factory: asked each time
        takes_inplace = _takes_inplace.__wrapped__(act_layer)
    return act_layer(inplace=True) if takes_inplace else act_layer()


@functools.cache
def _takes_inplace(act_layer: LayerFactory) -> bool:
    """Whether ``act_layer`` has an ``inplace`` argument (cached: a model builds thousands of activations)."""
    try:
        return "inplace" in inspect.signature(act_layer).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def same_padding(kernel_size: Size2, dilation: Size2 = 1) -> tuple[int, int]:
    """Padding that keeps the spatial size at stride 1 (odd kernels): ``dilation * (k - 1) // 2`` per axis."""
    (kh, kw), (dh, dw) = pair(kernel_size), pair(dilation)
    return dh * (kh - 1) // 2, dw * (kw - 1) // 2


def check_conv(
    in_chs: int, out_chs: int, kernel_size: Size2, *, dilation: Size2 = 1, groups: int = 1, layer: str = "conv"
) -> None:
    """Raise ModelArgumentError unless the widths, kernel and dilation are >= 1 and ``groups`` divides both
    widths: the message names the value (a model's ``widths=(0, ...)`` shows up here) before torch sees it."""
    what = f"{layer} {in_chs} -> {out_chs}"
    check_count(f"{what}: in_chs", in_chs, minimum=1)
    check_count(f"{what}: out_chs", out_chs, minimum=1)
    for k in pair(kernel_size):
        check_count(f"{what}: kernel_size", k, minimum=1)
    for d in pair(dilation):
        check_count(f"{what}: dilation", d, minimum=1)
    check_count(f"{what}: groups", groups, minimum=1)
    if in_chs % groups or out_chs % groups:
        raise ModelArgumentError(f"{what}: {groups} groups must divide both channel counts")


class ConvBnAct(nn.Sequential):
    """``conv -> norm -> act`` as a sequence of the submodules ``conv``, ``bn`` and ``act``;
    ``norm_layer=None`` or ``act_layer=None`` leaves that step (and its submodule) out, so the block costs no
    more module calls than the layers it holds (that matters at batch 1 in the small networks).

    Args:
        in_chs, out_chs: input and output channels.
        kernel_size: an int or an (h, w) pair such as ``(1, 7)`` for the asymmetric convs of Inception-v3.
        stride, dilation, groups: as in ``nn.Conv2d``.
        padding: defaults to :func:`same_padding`; pass 0 for the "valid" convs of the Inception stems.
        bias: defaults to ``norm_layer is None``.
        conv_layer: the convolution's class, called like ``nn.Conv2d`` (for example
            :class:`~cnnlab.layers.deformable.DeformConv2d`); it is always the submodule ``conv``.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: Size2 = 3,
        *,
        stride: Size2 = 1,
        padding: Size2 | None = None,
        dilation: Size2 = 1,
        groups: int = 1,
        bias: bool | None = None,
        norm_layer: LayerFactory | None = nn.BatchNorm2d,
        act_layer: LayerFactory | None = nn.ReLU,
        conv_layer: LayerFactory = nn.Conv2d,
    ) -> None:
        super().__init__()
        check_conv(in_chs, out_chs, kernel_size, dilation=dilation, groups=groups, layer="ConvBnAct")
        conv = conv_layer(
            in_chs,
            out_chs,
            kernel_size,
            stride=stride,
            padding=same_padding(kernel_size, dilation) if padding is None else padding,
            dilation=dilation,
            groups=groups,
            bias=norm_layer is None if bias is None else bias,
        )
        self.add_module("conv", conv)
        if norm_layer is not None:
            self.add_module("bn", norm_layer(out_chs))
        if act_layer is not None:
            self.add_module("act", create_act(act_layer))
