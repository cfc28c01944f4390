"""The effective receptive field (Luo, Li, Urtasun and Zemel, "Understanding the Effective Receptive Field in
Deep Convolutional Neural Networks", NIPS 2016): how much each input pixel actually moves one output unit.

The gradient of the centre unit of the last feature map (summed over its channels, Sec. 2; of a dense-output
model, the centre pixel of its output) with respect to the input, in absolute value, summed over input channels
and averaged over random inputs. The paper finds it
Gaussian-like and much smaller than the theoretical field; here it is measured on the real model in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from cnnlab.analysis.analyze import InputSize, analyze, default_input_size, parse_input_size
from cnnlab.errors import AnalysisError


@dataclass(frozen=True)
class EffectiveField:
    """``grad``: H x W mean absolute input gradient of the centre output unit, scaled to a maximum of 1;
    ``theoretical``: the analyzer's receptive field of the same feature map (height, width; None if unknown)."""

    grad: np.ndarray
    theoretical: tuple[int, int] | None
    samples: int

    @property
    def center(self) -> tuple[int, int]:
        """The gradient's centre of mass (the output unit's centre, which is the image centre only when the
        feature map has an odd size and the padding is symmetric)."""
        ys, xs = np.indices(self.grad.shape)
        total = self.grad.sum()
        return round(float((ys * self.grad).sum() / total)), round(float((xs * self.grad).sum() / total))

    def mass_within(self, side: int) -> float:
        """The share of the gradient in the ``side`` x ``side`` square around :attr:`center`."""
        cy, cx = self.center
        top, left = max(0, cy - side // 2), max(0, cx - side // 2)
        return float(self.grad[top : top + side, left : left + side].sum() / self.grad.sum())

    def effective_side(self, share: float = 0.95) -> int:
        """The side of the smallest square around :attr:`center` that holds ``share`` of the gradient."""
        for side in range(1, max(self.grad.shape) + 1):
            if self.mass_within(side) >= share - 1e-9:  # rounding of the float sums
                return side
        return max(self.grad.shape)


def _features(model: nn.Module, x: Tensor) -> Tensor:
    dense = getattr(model, "dense_output", False)  # a segmentation net: its output pixels, as the analyzer's field
    out = model.forward_features(x) if hasattr(model, "forward_features") and not dense else model(x)
    if not isinstance(out, Tensor) or out.ndim != 4:
        got = getattr(out, "shape", type(out).__name__)
        raise AnalysisError(
            f"the effective receptive field needs a feature map (N, C, H, W); {type(model).__name__} gives {got}"
        )
    return out


def effective_receptive_field(
    model: nn.Module, input_size: InputSize | None = None, *, samples: int = 8, seed: int = 0
) -> EffectiveField:
    """Measure the effective receptive field of ``model``'s last feature map (see the module docstring)."""
    size = parse_input_size(input_size) if input_size is not None else default_input_size(model)
    if samples < 1:
        raise AnalysisError(f"samples must be >= 1, got {samples}")
    rf = analyze(model, size).receptive_field
    was_training = model.training
    model.eval()
    try:
        gen = torch.Generator().manual_seed(seed)
        dtype = next((p.dtype for p in model.parameters()), torch.float32)
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        x = torch.randn(samples, *size, generator=gen, dtype=dtype).to(device).requires_grad_(True)
        feats = _features(model, x)
        cy, cx = feats.shape[-2] // 2, feats.shape[-1] // 2
        (grad,) = torch.autograd.grad(feats[:, :, cy, cx].sum(), x)  # samples are independent in eval mode
    finally:
        model.train(was_training)
    g = grad.abs().sum(1).mean(0).double().cpu().numpy()
    return EffectiveField(g / g.max() if g.max() > 0 else g, rf, samples)
