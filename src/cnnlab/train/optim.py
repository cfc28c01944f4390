"""Optimizers and learning-rate schedules (per step, with linear warm-up).

Only trainable parameters enter the optimizer, so frozen ones get no momentum or Adam state. Weight decay
applies to conv and linear weights, not to norms' scales and shifts or to biases (decaying a BatchNorm scale
only fights the normalisation; Goyal et al. 2017, "Accurate, Large Minibatch SGD", Sec. 5.1 discusses it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from cnnlab.train.config import TrainConfig

WARMUP_START = 1 / 25  # warm-up starts at lr/25, one-cycle's initial division factor (Smith & Topin 2019)


def offset_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of the submodules that a layer names in its ``offset_modules`` (a deformable conv's offset
    and mask convs: :class:`cnnlab.layers.DeformConv2d`)."""
    out: dict[int, nn.Parameter] = {}
    for m in model.modules():
        for name in getattr(m, "offset_modules", ()):
            sub = getattr(m, name, None)
            if sub is not None:
                out |= {id(p): p for p in sub.parameters()}
    return list(out.values())


def param_groups(model: nn.Module, weight_decay: float, *, lr: float, offset_lr_mult: float = 1.0) -> list[dict]:
    """Groups of trainable parameters: decayed weights (ndim > 1) and undecayed norms and biases, at ``lr``; with
    an ``offset_lr_mult`` other than 1, the offset layers' weights and biases (:func:`offset_parameters`) in two
    more groups at ``lr * offset_lr_mult``."""
    params = [p for p in model.parameters() if p.requires_grad]
    slow = {id(p) for p in offset_parameters(model)} if offset_lr_mult != 1 else set()
    parts = [(lr, [p for p in params if id(p) not in slow])]
    if any(id(p) in slow for p in params):
        parts.append((lr * offset_lr_mult, [p for p in params if id(p) in slow]))
    return [
        group
        for rate, chosen in parts
        for group in (
            {"params": [p for p in chosen if p.ndim > 1], "weight_decay": weight_decay, "lr": rate},
            {"params": [p for p in chosen if p.ndim <= 1], "weight_decay": 0.0, "lr": rate},
        )
    ]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, config.weight_decay, lr=config.lr, offset_lr_mult=config.offset_lr_mult)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    nesterov = config.nesterov and config.momentum > 0
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=nesterov)


def lr_factor(
    step: int,
    *,
    total: int,
    warmup: int,
    schedule: str,
    milestones: Sequence[int] | None = None,
    warmup_factor: float | None = None,
) -> float:
    """The multiplier of the peak lr at ``step`` (0-based) of ``total`` steps.

    Warm-up: linear from WARMUP_START to 1 over ``warmup`` steps, or ``warmup_factor`` throughout (He et al. 2016
    train ResNet-110 at 0.01 for about 400 iterations, then at 0.1). Then ``constant``: 1; ``cosine``: half a
    cosine to 0 (Loshchilov & Hutter 2017); ``onecycle``: a straight line to 0 (Smith & Topin 2019);
    ``step``: divided by 10 at each of ``milestones`` (steps; default: half and three quarters of the steps,
    where He et al. 2016 divide by 10, at 32k and 48k of 64k iterations).
    """
    if step < warmup:
        return warmup_factor if warmup_factor is not None else WARMUP_START + (1 - WARMUP_START) * step / warmup
    done = (step - warmup) / max(1, total - warmup)  # 0 .. 1 after the warm-up
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * done))
    if schedule == "onecycle":
        return max(0.0, 1 - done)
    if schedule == "step":
        marks = (total // 2, total * 3 // 4) if milestones is None else milestones
        return 10.0 ** -sum(step >= m for m in marks)
    return 1.0


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR over ``config.epochs * steps_per_epoch`` steps (milestones in epochs become steps)."""
    total = config.epochs * steps_per_epoch
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total - 1)
    marks = None if config.milestones is None else [round(m * steps_per_epoch) for m in config.milestones]
    factor = None if config.warmup_lr is None else config.warmup_lr / config.lr
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: lr_factor(
            s, total=total, warmup=warmup, schedule=config.schedule, milestones=marks, warmup_factor=factor
        ),
    )
