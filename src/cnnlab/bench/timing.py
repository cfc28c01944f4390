"""Timing: interleaved medians of two implementations, and the machine's float32 matmul peak."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch


@dataclass
class Comparison:
    """Median seconds per image of cnnlab's implementation and the peer's, and the speed ratio ours / theirs."""

    ours_s: float
    theirs_s: float
    ratio: float = field(init=False)

    def __post_init__(self) -> None:
        self.ratio = self.theirs_s / self.ours_s


def interleaved(fns: Mapping[str, Callable[[], object]], *, repeats: int, inner: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, timed in turns (the order reversed every other repetition)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    for r in range(repeats):
        for name in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            for _ in range(inner):
                fns[name]()
            times[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(t) for name, t in times.items()}


def calls_per_sample(fn: Callable[[], object], min_sample_s: float) -> int:
    """Calls of ``fn`` (already warmed up) that make one timed sample last at least ``min_sample_s``."""
    start = time.perf_counter()
    fn()
    return max(1, math.ceil(min_sample_s / max(time.perf_counter() - start, 1e-9)))


def compare(
    ours: Callable[[], object], theirs: Callable[[], object], *, images: int, repeats: int, min_sample_s: float = 0.0
) -> Comparison:
    """Warm both up, then time them interleaved; seconds per image."""
    ours(), theirs()
    inner = 1
    if min_sample_s > 0:
        inner = max(calls_per_sample(ours, min_sample_s), calls_per_sample(theirs, min_sample_s))
    t = interleaved({"ours": ours, "theirs": theirs}, repeats=repeats, inner=inner)
    return Comparison(t["ours"] / images, t["theirs"] / images)


def matmul_peak_gflops(n: int, *, repeats: int = 5) -> float:
    """The machine's float32 matmul rate, GFLOP/s: the best of ``repeats`` n x n products (2 n^3 flops each)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
