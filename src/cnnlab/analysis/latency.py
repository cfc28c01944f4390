"""Measured CPU latency of one forward pass: warm-up runs, then the median of timed runs.

Timings depend on the machine, its load and the thread count (reported with the figure); compare models
measured in one session only.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.analysis.analyze import InputSize, default_input_size, parse_input_size


@dataclass(frozen=True)
class Latency:
    """Milliseconds per forward pass of a batch of ``batch`` on the CPU with ``threads`` intra-op threads."""

    median_ms: float
    min_ms: float
    runs: int
    batch: int
    threads: int


@torch.inference_mode()
def measure_latency(
    model: nn.Module, input_size: InputSize | None = None, *, runs: int = 5, warmup: int = 1, batch: int = 1
) -> Latency:
    """Time ``runs`` eval-mode forward passes of random input after ``warmup`` untimed ones."""
    size = parse_input_size(input_size) if input_size is not None else default_input_size(model)
    was_training = model.training
    model.eval()
    x = torch.randn(batch, *size)
    times = []
    try:
        for i in range(warmup + max(runs, 1)):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    finally:
        model.train(was_training)
    return Latency(statistics.median(times), min(times), len(times), batch, torch.get_num_threads())
