"""Timing: interleaved medians of two or more implementations, and the machine's float32 matmul peak as the best
of three GEMM implementations (torch, numpy's OpenBLAS, ONNX Runtime)."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from cnnlab.optimize import OnnxRuntimeRunner


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


def warm_interleaved(
    fns: Mapping[str, Callable[[], object]], *, images: int, repeats: int, min_sample_s: float = 0.0
) -> dict[str, float]:
    """Warm each function up, then time them all interleaved, each sample at least ``min_sample_s`` long;
    median seconds per image."""
    for fn in fns.values():
        fn()
    inner = 1
    if min_sample_s > 0:
        inner = max(calls_per_sample(fn, min_sample_s) for fn in fns.values())
    t = interleaved(fns, repeats=repeats, inner=inner)
    return {name: v / images for name, v in t.items()}


def compare(
    ours: Callable[[], object], theirs: Callable[[], object], *, images: int, repeats: int, min_sample_s: float = 0.0
) -> Comparison:
    """Warm both up, then time them interleaved; seconds per image."""
    t = warm_interleaved({"ours": ours, "theirs": theirs}, images=images, repeats=repeats, min_sample_s=min_sample_s)
    return Comparison(t["ours"], t["theirs"])


def _best_gflops(fn: Callable[[], object], n: int, repeats: int) -> float:
    """GFLOP/s of the fastest of ``repeats`` calls of an n x n x n product (2 n^3 flops), after one warm-up."""
    fn()
    return 2 * n**3 / min(_timed(fn) for _ in range(repeats)) / 1e9


def matmul_peak_gflops(n: int, *, repeats: int = 5) -> float:
    """``torch.mm``'s float32 rate, GFLOP/s: the best of ``repeats`` n x n products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return _best_gflops(lambda: torch.mm(a, b), n, repeats)


BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
"""Settings that some machines make for old OpenBLAS builds; they can keep a current numpy's OpenBLAS off its
native kernel (on the machine issue 17 was measured on: 200 instead of 475 GFLOP/s; on the one of 2026-12-01's
benchmark they were unset and no core type did better than 213), so numpy's measurement runs without them, in a
process of its own; nothing else is measured without them."""

_NUMPY_MATMUL = """
import json, os, sys, time
import numpy as np
n, repeats, report = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
rng = np.random.default_rng(0)
a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
a @ b
times = []
for _ in range(repeats):
    start = time.perf_counter()
    a @ b
    times.append(time.perf_counter() - start)
print(json.dumps({"gflops": 2 * n**3 / min(times) / 1e9, "env": {k: os.environ.get(k) for k in report}}))
"""


def numpy_matmul(n: int, *, repeats: int = 5, timeout_s: float = 120.0) -> dict[str, object]:
    """numpy's float32 n x n matmul rate, measured in a child process whose environment lacks
    :data:`BLAS_OVERRIDES` and uses torch's thread count: ``{"gflops": ..., "env": the child's values of those
    variables}``."""
    threads = str(torch.get_num_threads())
    env = {k: v for k, v in os.environ.items() if k not in BLAS_OVERRIDES} | {"OPENBLAS_NUM_THREADS": threads}
    report = [*BLAS_OVERRIDES, "OPENBLAS_NUM_THREADS"]
    done = subprocess.run(
        [sys.executable, "-c", _NUMPY_MATMUL, str(n), str(repeats), *report],
        env=env, capture_output=True, text=True, check=True, timeout=timeout_s,
    )  # fmt: skip
    return json.loads(done.stdout)


def onnxruntime_matmul_gflops(n: int, *, repeats: int = 5) -> float:
    """ONNX Runtime's float32 rate on one ``MatMul`` node (the n x n right-hand side a constant, as a layer's
    weight is), with torch's thread count."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    b = numpy_helper.from_array(np.random.default_rng(1).standard_normal((n, n), dtype=np.float32), name="b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["image", "b"], ["product"])],
        "matmul",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("product", TensorProto.FLOAT, [n, n])],
        initializer=[b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    run, a = OnnxRuntimeRunner(model.SerializeToString(), (n,)), torch.randn(n, n)
    return _best_gflops(lambda: run(a), n, repeats)


def matmul_peaks(n: int, *, repeats: int = 5) -> dict[str, float | None]:
    """The float32 n x n matmul rate of each implementation, GFLOP/s (``None`` where one could not run: numpy's
    child process failed, onnxruntime is not installed)."""
    peaks: dict[str, float | None] = {"torch": matmul_peak_gflops(n, repeats=repeats)}
    for name, measure in (
        ("numpy", lambda: float(numpy_matmul(n, repeats=repeats)["gflops"])),  # type: ignore[arg-type]
        ("onnxruntime", lambda: onnxruntime_matmul_gflops(n, repeats=repeats)),
    ):
        try:
            peaks[name] = measure()
        except (ImportError, OSError, subprocess.SubprocessError, ValueError):
            peaks[name] = None
    return peaks


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
