"""Helpers shared by the tests (imported as ``tests.helpers``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest
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


def peer_prediction(out: Any) -> Any:
    """A peer model's eval output as cnnlab's ``forward`` returns it: torchvision's segmentation models return
    ``{"out": ..., "aux": ...}``, whose prediction is ``out``."""
    return out["out"] if isinstance(out, Mapping) else out


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


LARGEST = frozenset(
    {"vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "resnext101_32x8d",
     "wide_resnet50_2", "se_resnet152", "alexnet", "alexnet_paper", "resnet152", "cifar_resnet1202",
     "deeplabv3_resnet101"}
)  # fmt: skip
"""The registered models with 60 M weights or more (VGG 133-144 M, ResNeXt-101 32x8d 88.8 M, Wide ResNet-50-2
68.9 M, SE-ResNet-152 66.8 M, AlexNet 61.1 M and the paper's AlexNet 61.0 M, DeepLabV3-ResNet101 61.0 M,
ResNet-152 60.2 M) or 1,000 layers or more (ResNet-1202): the tests that build them with real weights are marked
``slow``."""


def slow_if_largest(name: str, *values: Any, id: str | None = None) -> Any:
    """A ``pytest.param`` of ``(name, *values)``, marked slow when ``name`` is one of :data:`LARGEST`."""
    marks = [pytest.mark.slow] if name in LARGEST else []
    return pytest.param(name, *values, marks=marks, id=id)


def params_of(names: Iterable[str]) -> list[Any]:
    return [slow_if_largest(n) for n in names]


def png_figure(path: Any) -> tuple[int, int]:
    """The (width, height) of a figure that cnnlab drew, after checking that it is one: a PNG that decodes and
    holds a drawing (a blank canvas has a colour or two; axes, text and data drawn with anti-aliasing, dozens)."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG", f"{path} is a {image.format}"
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 16, f"{path} is blank ({len(colours)} colours)"
        return image.size
