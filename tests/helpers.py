"""Helpers shared by the tests (imported as ``tests.helpers``)."""

from __future__ import annotations

import torch
from torch import nn


def randomize_norm_stats(model: nn.Module) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters, so that an eval-mode
    comparison also checks that the norms' buffers landed in the right places."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                    m.bias.copy_(torch.rand(m.bias.shape, generator=gen) - 0.5)
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def calibrate_norms(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set BatchNorm running statistics to those of one batch and switch to eval mode.

    An untrained very deep net in eval mode with the initial statistics (mean 0, var 1) can overflow
    (ResNet-1202 doubles its activations' variance at every block); real statistics keep it finite.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
    model.train()
    model(x)
    for m in norms:
        m.momentum = 0.1
    return model.eval()
