"""Helpers shared by the tests (imported as ``tests.helpers``)."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.base import calibrate_norms as calibrate_norms  # re-exported for the tests


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
