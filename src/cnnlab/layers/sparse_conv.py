"""A convolution with mostly-zero weights run as a sparse product: the input unfolded into columns (im2col) and
multiplied by the weights stored as a compressed-sparse-row matrix, so that only the nonzero weights are
multiplied.

Szegedy et al. 2015 (GoogLeNet, Sec. 3) argue against this: "todays computing infrastructures are very
inefficient when it comes to numerical calculation on non-uniform sparse data structures. Even if the number of
arithmetic operations is reduced by 100x, the overhead of lookups and cache misses is so dominant that switching to
sparse matrices would not pay off", which is why the Inception module approximates a sparse structure with dense
blocks. ``cnnlab tricks --only sparse`` times this layer against the dense conv it came from.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError
from cnnlab.layers.types import pair


class SparseConv2d(nn.Module):
    """The function of a dense ``nn.Conv2d`` (groups 1, any stride, padding and dilation) computed as
    ``W_csr @ unfold(x)``: ``W`` is the conv's weight as an ``out x (in * kh * kw)`` CSR matrix. Inference only
    (the weight is a buffer); the output equals the dense conv's up to float rounding. ``sparse=False`` keeps
    ``W`` dense: the same unfolded product with every weight multiplied, the baseline that isolates the
    sparse product from the unfolding."""

    def __init__(self, conv: nn.Conv2d, *, sparse: bool = True) -> None:
        super().__init__()
        if not isinstance(conv, nn.Conv2d) or conv.groups != 1 or isinstance(conv.padding, str):
            raise ModelArgumentError(
                f"SparseConv2d copies an nn.Conv2d with groups=1 and numeric padding; got {conv!r}"
            )
        self.out_chs, self.kernel_size = conv.out_channels, pair(conv.kernel_size)  # type: ignore[arg-type]
        self.stride, self.padding = pair(conv.stride), pair(conv.padding)  # type: ignore[arg-type]
        self.dilation = pair(conv.dilation)  # type: ignore[arg-type]
        weight = conv.weight.detach().reshape(conv.out_channels, -1)
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state": not news to the user
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self.register_buffer("weight", weight.to_sparse_csr() if sparse else weight.clone())
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())

    @property
    def nonzeros(self) -> int:
        """The weights multiplied at each output position: the CSR matrix's stored values (every weight when
        dense)."""
        return int(self.weight.crow_indices()[-1]) if self.weight.layout == torch.sparse_csr else self.weight.numel()

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        cols = F.unfold(x, self.kernel_size, dilation=self.dilation, padding=self.padding, stride=self.stride)
        cols = cols.transpose(0, 1).reshape(cols.shape[1], -1)  # (in * kh * kw) x (N * L): one product for the batch
        out = (self.weight @ cols).reshape(self.out_chs, n, oh, ow).transpose(0, 1)  # N x out x oh x ow
        return out if self.bias is None else out + self.bias[:, None, None]


def prune_(conv: nn.Conv2d, sparsity: float, *, generator: torch.Generator | None = None) -> nn.Conv2d:
    """Zero ``round(sparsity * n)`` of ``conv``'s ``n`` weights, chosen at random, in place; returns ``conv``."""
    if not 0 <= sparsity < 1:
        raise ModelArgumentError(f"sparsity is the share of zero weights, in [0, 1); got {sparsity!r}")
    n = conv.weight.numel()
    order = torch.randperm(n, generator=generator)
    with torch.no_grad():
        conv.weight.view(-1)[order[: round(sparsity * n)]] = 0
    return conv
