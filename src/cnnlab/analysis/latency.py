"""Measured CPU latency of one forward pass: warm-up runs, then the median and the range of timed runs.

Timings depend on the machine, its load and the thread count (reported with the figure); compare models
measured in one session only. :func:`measure_latencies` times several models in turns (one pass of each, then
the next round), so that a busy moment of the machine slows all of them alike; the range of each model's runs
shows how busy it was (:data:`WIDE_SPREAD`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.analysis.analyze import InputSize, default_input_size, parse_input_size

WIDE_SPREAD = 1.5
"""A slowest run more than this many times the fastest: the machine was busy, and the median is not a property
of the model alone (an idle machine keeps a model's runs within a few per cent of each other)."""


@dataclass(frozen=True)
class Latency:
    """Milliseconds per forward pass of a batch of ``batch`` on the CPU with ``threads`` intra-op threads: the
    median, the fastest and the slowest of ``runs`` timed passes."""

    median_ms: float
    min_ms: float
    max_ms: float
    runs: int
    batch: int
    threads: int

    @property
    def spread(self) -> float:
        """The slowest run over the fastest (1.0: every run took as long)."""
        return self.max_ms / self.min_ms

    @property
    def wide(self) -> bool:
        return self.spread > WIDE_SPREAD


@torch.inference_mode()
def measure_latencies(
    models: Sequence[nn.Module],
    input_sizes: Sequence[InputSize | None] | None = None,
    *,
    runs: int = 5,
    warmup: int = 1,
    batch: int = 1,
) -> list[Latency]:
    """Time ``runs`` eval-mode forward passes of random input of each model, in turns, after ``warmup`` untimed
    rounds. ``input_sizes``: one per model (None: the model's default)."""
    sizes = [
        parse_input_size(s) if s is not None else default_input_size(m)
        for m, s in zip(models, input_sizes or [None] * len(models), strict=True)
    ]
    inputs = [torch.randn(batch, *size) for size in sizes]
    modes = [m.training for m in models]
    times: list[list[float]] = [[] for _ in models]
    try:
        for m in models:
            m.eval()
        for i in range(warmup + max(runs, 1)):
            for model, x, ms in zip(models, inputs, times, strict=True):
                start = time.perf_counter()
                model(x)
                if i >= warmup:
                    ms.append((time.perf_counter() - start) * 1e3)
    finally:
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)
    threads = torch.get_num_threads()
    return [Latency(statistics.median(t), min(t), max(t), len(t), batch, threads) for t in times]


def measure_latency(
    model: nn.Module, input_size: InputSize | None = None, *, runs: int = 5, warmup: int = 1, batch: int = 1
) -> Latency:
    """Time ``runs`` eval-mode forward passes of one model (see :func:`measure_latencies`)."""
    (latency,) = measure_latencies([model], [input_size], runs=runs, warmup=warmup, batch=batch)
    return latency
