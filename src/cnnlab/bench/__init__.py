"""Benchmarks: cnnlab's models against the torchvision/timm implementation of the same architecture.

Everything runs in one process, on the same inputs and with the same weights (the peer's state_dict is loaded
into the cnnlab model, so both compute the same function). For each model the two implementations are timed
interleaved, alternating which goes first in each repetition so that drift in the machine's speed (other
processes, clocks) falls on both alike, and the medians are compared. Ratios are speed ratios,
``ours / theirs`` in images per second: above 1 means cnnlab is faster.

Measured per model: inference latency at batch 1, inference throughput at the bench batch, and training-step
throughput (forward, backward and an SGD step). Then :func:`cnnlab.optimize_for_inference` against the peer's
eager model and against ONNX Runtime (on the peer exported as it is, and on cnnlab's folded model), at batch 1
and at the bench batch, with each path's GFLOP/s as a fraction of the machine's float32 GEMM peak (the best of
torch, numpy's OpenBLAS and ONNX Runtime on one large product), and
:func:`cnnlab.train.fit` against a hand-written training loop on the same images.

One concern per module: :mod:`.config` (:class:`BenchConfig`), :mod:`.timing` (interleaved medians, the matmul
peak), :mod:`.peers` (the cnnlab/peer pairs and their comparisons, ``optimize_for_inference``), :mod:`.training`
(the trainer against the hand-written loop, the main job), :mod:`.analysis` (the analyzer's speed) and
:mod:`.report` (:func:`run_bench`'s JSON and :func:`format_report`'s tables).

May import: cnnlab.analysis, cnnlab.data, cnnlab.errors, cnnlab.layers, cnnlab.machine, cnnlab.models,
cnnlab.optimize, cnnlab.registry, cnnlab.train, cnnlab.weights.
"""

from cnnlab.bench.config import DEFAULT_MODELS, BenchConfig
from cnnlab.bench.peers import bench_model
from cnnlab.bench.report import format_report, run_bench
from cnnlab.bench.timing import Comparison, interleaved, matmul_peak_gflops, matmul_peaks
from cnnlab.bench.training import minimal_training_loop

__all__ = [
    "DEFAULT_MODELS",
    "BenchConfig",
    "Comparison",
    "bench_model",
    "format_report",
    "interleaved",
    "matmul_peak_gflops",
    "matmul_peaks",
    "minimal_training_loop",
    "run_bench",
]
