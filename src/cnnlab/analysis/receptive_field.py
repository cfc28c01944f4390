"""Receptive-field arithmetic: how far one output unit sees into the input, and with what step.

For a layer with kernel ``k``, stride ``s`` and dilation ``d`` applied to a feature map whose units see
``r`` input pixels spaced ``j`` apart (the "jump", the product of the strides before it), every output unit
sees ``r + (d * (k - 1)) * j`` pixels and the jump becomes ``j * s`` (Araujo, Norris and Sim, "Computing
Receptive Fields of Convolutional Neural Networks", Distill 2019, Eq. 1-2). Padding moves where the field
lies, not its size. A global pooling or a fully connected layer over an ``n``-unit-wide map is a kernel of
size ``n`` (and keeps the jump). Where paths meet (a residual addition, an Inception concatenation) the field
is the largest over the paths. Every quantity is a (height, width) pair, so the 1x7 and 7x1 convs of
Inception-v3 are exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cnnlab.layers.types import Size2, pair


@dataclass(frozen=True)
class Field:
    """The receptive field of one unit: ``size`` input pixels per axis, units ``jump`` input pixels apart."""

    size: tuple[int, int] = (1, 1)
    jump: tuple[int, int] = (1, 1)

    def through(self, kernel_size: Size2, *, stride: Size2 = 1, dilation: Size2 = 1) -> Field:
        """The field after a window of ``kernel_size`` with ``stride`` and ``dilation`` (conv or pooling)."""
        k, s, d = pair(kernel_size), pair(stride), pair(dilation)
        size = tuple(r + d_ * (k_ - 1) * j for r, k_, d_, j in zip(self.size, k, d, self.jump, strict=True))
        jump = tuple(j * s_ for j, s_ in zip(self.jump, s, strict=True))
        return Field(size, jump)  # type: ignore[arg-type]

    def global_(self, extent: Size2) -> Field:
        """The field after an operation that mixes a whole ``extent``-unit-wide map (global pooling, a fc).

        The jump is kept: the one output unit has no neighbours, and where it is broadcast back onto a map
        (a squeeze-and-excitation gate) that map's own jump continues."""
        return Field(self.through(extent).size, self.jump)

    @property
    def label(self) -> str:
        """``"7"`` for a square field, ``"7x13"`` (height x width) otherwise."""
        h, w = self.size
        return str(h) if h == w else f"{h}x{w}"

    @property
    def jump_label(self) -> str:
        h, w = self.jump
        return str(h) if h == w else f"{h}x{w}"


def merge(fields: Iterable[Field]) -> Field:
    """Where paths meet, the largest field and the largest jump over them, per axis."""
    fields = list(fields)
    if not fields:
        return Field()
    return Field(
        tuple(max(f.size[a] for f in fields) for a in (0, 1)),  # type: ignore[arg-type]
        tuple(max(f.jump[a] for f in fields) for a in (0, 1)),  # type: ignore[arg-type]
    )


def stack_field(
    kernel_sizes: Sequence[int],
    *,
    strides: Sequence[int] | None = None,
    dilations: Sequence[int] | None = None,
) -> int:
    """Closed form for a chain of square layers: ``1 + sum_i d_i (k_i - 1) prod_{j<i} s_j``.

    Two stacked 3x3 convs give 5, three give 7, 3x3 convs dilated by 1, 2 and 5 give 17.
    """
    strides = strides or [1] * len(kernel_sizes)
    dilations = dilations or [1] * len(kernel_sizes)
    size, jump = 1, 1
    for k, s, d in zip(kernel_sizes, strides, dilations, strict=True):
        size += d * (k - 1) * jump
        jump *= s
    return size
