"""The memory a training run needs, estimated before it starts, against the memory of its device.

A training step keeps the output of every layer for the backward pass. :func:`activation_bytes` adds up the
outputs of a model's leaf modules (and its input) for one image, measured on the meta device, where tensors have
shapes and no storage, so that an input of any size costs nothing to measure; a batch keeps that many times as
much. The weights add their gradients and up to two optimizer states (AdamW's moments; SGD's momentum is one). A
run whose estimate is above the device's whole memory (RAM for the CPU, the GPU's own for CUDA,
:func:`cnnlab.machine.total_memory`) cannot run; it is refused before its run folder is made, with the image size
and batch size that would fit. The estimate is a floor, not a forecast: the allocator, the data loader and
temporary buffers take more, so a run below it may still run out of memory.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cnnlab.data.datasets import SplitSet
from cnnlab.errors import ConfigError
from cnnlab.machine import total_memory
from cnnlab.registry import meta_model
from cnnlab.train.atomic import format_bytes
from cnnlab.train.config import TrainConfig

WEIGHT_COPIES = 4  # the weights, their gradients and two optimizer states (AdamW's first and second moments)


def activation_bytes(model: nn.Module, in_chans: int, size: int) -> int:
    """Bytes of one ``in_chans`` x ``size`` x ``size`` input and of the outputs of every leaf module of ``model``
    (on the meta device, in eval mode) for it."""
    total = in_chans * size * size * torch.finfo(torch.float32).bits // 8

    def count(_module: nn.Module, _inputs: Any, out: Any) -> None:
        nonlocal total
        outs = out if isinstance(out, tuple | list) else [out]
        total += sum(t.numel() * t.element_size() for t in outs if isinstance(t, torch.Tensor))

    hooks = [m.register_forward_hook(count) for m in model.modules() if next(m.children(), None) is None]
    try:
        with torch.no_grad():
            model.eval()(torch.empty(1, in_chans, size, size, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return total


def training_bytes(model: nn.Module, in_chans: int, size: int, batch_size: int) -> tuple[int, int]:
    """(bytes the batch's activations keep, bytes of the weights with their gradients and optimizer states)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return batch_size * activation_bytes(model, in_chans, size), WEIGHT_COPIES * weights


def check_fits_memory(config: TrainConfig, data: SplitSet, size: int, device: torch.device) -> None:
    """A ConfigError when training ``config.model`` on ``data`` at ``size`` px in batches of ``config.batch_size``
    needs more than the whole memory of ``device`` (see the module docstring)."""
    budget = total_memory(device)
    if budget is None:
        return
    kwargs = config.to_dict()["model_kwargs"]
    model = meta_model(config.model, kwargs, num_classes=data.num_classes, in_chans=data.in_chans)
    batch = config.batch_size
    activations, weights = training_bytes(model, data.in_chans, size, batch)
    if activations + weights <= budget:
        return
    room, per_image = budget - weights, activations / batch
    if room >= per_image:  # activations grow with the pixels, about as size squared
        fits = f"at {size} px batches of at most {int(room // per_image):,} fit"
        side = math.isqrt(int(size * size * room / activations))
        if side >= getattr(model, "min_input_size", 1):
            fits += f", and batches of {batch:,} fit images of about {side:,} px"
    else:
        fits = "the weights alone do not fit" if room <= 0 else f"not even one image of {size} px fits"
    where = "RAM" if device.type == "cpu" else f"memory of {device}"
    raise ConfigError(
        f"training {config.model} on {size}x{size} images in batches of {batch:,} needs at least "
        f"{format_bytes(activations + weights)} ({format_bytes(activations)} of activations, {format_bytes(weights)} "
        f"for the weights, their gradients and the optimizer's state), more than the {format_bytes(budget)} of "
        f"{where} of this machine: {fits}; lower --image-size or --batch-size"
    )
