"""The arithmetic a run trains in: float32, or bfloat16 autocast (mixed precision), and where bfloat16 is supported.

bfloat16 keeps float32's 8-bit exponent and cuts the mantissa to 7 bits (Kalamkar et al. 2019, "A Study of BFLOAT16
for Deep Learning Training"), so a network trains in it without loss scaling. Under ``torch.autocast`` the
convolutions and matrix products run in bfloat16 while the weights, their gradients, the optimizer state, the
batch-norm statistics and the loss stay float32 (autocast casts copies of the weights for each product and runs
the loss and the normalisations in float32): mixed precision as Micikevicius et al. 2018 describe it, without the
loss scaling that float16 needs.

``"auto"`` is bfloat16 where the device computes it natively (a CUDA GPU that supports it; a CPU with AVX512-BF16
or AMX-BF16 instructions, which oneDNN's convolutions use) and float32 elsewhere; a run records what it resolved
to, so that resuming it elsewhere keeps its arithmetic.

May import: cnnlab.errors.
"""

from __future__ import annotations

from typing import Literal

import torch

from cnnlab.errors import ConfigError

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` has native bfloat16 arithmetic: a CUDA GPU that supports it, or a CPU with bfloat16 dot
    products (AVX512-BF16 or AMX tiles) that oneDNN uses. On other CPUs oneDNN would emulate bfloat16, more slowly
    than float32."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        return onednn and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # a torch build without these checks: assume not
        return False


def resolve_precision(precision: str, device: torch.device) -> Literal["fp32", "bf16"]:
    """``precision`` as a run on ``device`` computes: ``"auto"`` becomes ``"bf16"`` where :func:`bf16_supported`,
    else ``"fp32"``; ``"bf16"`` where it is not supported is a ConfigError."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return "fp32"
    if bf16_supported(device):
        return "bf16"
    if precision == "auto":
        return "fp32"
    what = "this processor has no bfloat16 dot products (AVX512-BF16 or AMX)" if device.type == "cpu" else (
        f"{device} does not support bfloat16"
    )  # fmt: skip
    raise ConfigError(
        f"precision bf16: {what}, so bfloat16 would be emulated and slower than float32; use --precision fp32 (or "
        "auto: bfloat16 where the device has it)"
    )


__all__ = ["PRECISIONS", "Precision", "bf16_supported", "resolve_precision"]
