"""cnnlab's models against their peers: the cnnlab/peer pairs (the peer's weights loaded into ours), the per-model
comparisons (batch-1 latency, throughput, training step), and :func:`cnnlab.optimize_for_inference` against the
peer's eager model."""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor, nn

from cnnlab.analysis import count_macs
from cnnlab.bench.config import BenchConfig
from cnnlab.bench.timing import Comparison, compare, warm_interleaved
from cnnlab.errors import CnnlabError, MissingDependencyError
from cnnlab.models.base import LogitsWithAux, calibrate_norms
from cnnlab.optimize import (
    InferenceModel,
    OnnxRuntimeRunner,
    OpenVinoRunner,
    onnx_bytes,
    optimize_for_inference,
)
from cnnlab.registry import Peer, build_model, model_entry
from cnnlab.train.engine import autocast, classification_loss
from cnnlab.weights import load_pretrained


def build_pair(name: str) -> tuple[nn.Module, nn.Module, Peer]:
    """cnnlab's model and its first peer, the peer's weights loaded into ours. Raises CnnlabError for a model
    without a peer."""
    entry = model_entry(name)
    if not entry.peers:
        raise CnnlabError(f"{name} has no torchvision/timm peer")
    peer = entry.peers[0]
    theirs = peer.build()
    ours = build_model(name)
    load_pretrained(ours, theirs)
    return ours, theirs, peer


def as_cnnlab_output(out: Any) -> Tensor | LogitsWithAux:
    """A model's training output in cnnlab's form, for :func:`cnnlab.train.engine.classification_loss`: a tensor
    as it is; a tuple with the main logits first and then auxiliary ones (torchvision's ``GoogLeNetOutputs`` and
    ``InceptionOutputs``, where an absent head is ``None``) as :class:`LogitsWithAux`."""
    if isinstance(out, Tensor | LogitsWithAux):
        return out
    main, *aux = out
    return LogitsWithAux(main, tuple(a for a in aux if a is not None))


def training_step(
    model: nn.Module, x: Tensor, target: Tensor, *, aux_weight: float, bf16: bool = False
) -> Callable[[], None]:
    """One forward, backward and SGD step on ``(x, target)`` per call, in training mode, with the trainer's loss
    (under the trainer's bfloat16 autocast with ``bf16``)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(x.device, bf16):
            out = as_cnnlab_output(model(x))
            loss, _ = classification_loss(out, target, label_smoothing=0.0, aux_weight=aux_weight)
        loss.backward()
        opt.step()

    return step


def inference(model: nn.Module, x: Tensor) -> Callable[[], object]:
    """One eval-mode forward pass on ``x`` per call, without gradients."""
    model.eval()

    def run() -> object:
        with torch.no_grad():
            return model(x)

    return run


def model_size(model: nn.Module, size: int) -> int:
    """The bench size for ``model``: ``size`` scaled by the model's own resolution over 224 (Inception-v3's
    299 becomes 150 at a bench size of 112), at least the model's minimum."""
    scaled = round(size * getattr(model, "default_image_size", 224) / 224)
    return max(scaled, getattr(model, "min_input_size", 1))


def guarded(measure: Callable[[], Comparison]) -> dict[str, Any]:
    """``measure()`` as a dict, or ``{"error": ...}`` when it fails (so one model cannot stop the run)."""
    try:
        return asdict(measure())
    except Exception as e:  # an architecture that cannot run at this size, out of memory, ...
        return {"error": f"{type(e).__name__}: {str(e)[:300]}"}


def attempt(name: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``measure()``, or the reason it could not run as ``{"name", "status"}``: one model cannot stop the run."""
    try:
        return measure()
    except (CnnlabError, ImportError) as e:  # no peer, timm not installed
        return {"name": name, "status": f"skipped: {e}"}
    except Exception as e:
        return {"name": name, "status": f"error: {type(e).__name__}: {str(e)[:300]}"}


def bench_model(name: str, cfg: BenchConfig, *, onnxruntime: bool = True) -> dict[str, Any]:
    """Latency, throughput and training-step comparisons of one model against its peer; with ``onnxruntime``, also
    ONNX Runtime on the peer's export against the peer."""
    ours, theirs, peer = build_pair(name)
    size = model_size(ours, cfg.size)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(cfg.batch, 3, size, size, generator=gen)
    target = torch.randint(0, ours.num_classes, (cfg.batch,), generator=gen)
    one = x[:1]
    with torch.no_grad():
        diff = (inference(ours, x[:2])() - inference(theirs, x[:2])()).abs().max().item()
    flops = 2 * count_macs(ours, (3, size, size))
    aux = ours.aux_loss_weight  # the peer's auxiliary heads get the same weight
    result = {
        "name": name,
        "status": "ok",
        "peer": f"{peer.library}:{peer.name}",
        "size": size,
        "max_abs_diff": diff,
        "gflop_per_image": flops / 1e9,
        "latency_b1": guarded(
            lambda: compare(
                inference(ours, one),
                inference(theirs, one),
                images=1,
                repeats=cfg.latency_repeats,
                min_sample_s=cfg.min_sample_s,
            )
        ),
        "throughput": guarded(
            lambda: compare(inference(ours, x), inference(theirs, x), images=cfg.batch, repeats=cfg.repeats)
        ),
        "train_step": guarded(
            lambda: compare(
                training_step(ours, x, target, aux_weight=aux),
                training_step(theirs, x, target, aux_weight=aux),
                images=cfg.batch,
                repeats=cfg.repeats,
            )
        ),
    }
    result["onnxruntime"] = bench_onnxruntime(theirs, x, cfg) if onnxruntime else None
    ours_s = result["throughput"].get("ours_s")
    result["gflops_ours"] = None if ours_s is None else flops / ours_s / 1e9
    return result


PATHS = {
    "peer_eager": "{peer} eager",
    "optimized": "optimize_for_inference(backend={backend})",
    "onnxruntime_cnnlab": "optimize_for_inference(backend=onnxruntime)",
    "onnxruntime_peer": "onnxruntime on torch.onnx.export({peer})",
    "openvino_peer_f32": "OpenVINO f32 on torch.onnx.export({peer})",
    "openvino_peer_default": "OpenVINO default ({openvino_default}) on torch.onnx.export({peer})",
    "openvino_bf16": "optimize_for_inference(backend=openvino, precision=bf16)",
    "onnxruntime_int8": "optimize_for_inference(backend=onnxruntime, precision=int8)",
    "openvino_int8": "optimize_for_inference(backend=openvino, precision=int8)",
}
"""The inference paths of the optimization comparison, by report key, and how the report names them:
the peer's eager model, cnnlab's optimized model, cnnlab's graph preparation (BN folded, traced once) run by
ONNX Runtime, and what a user would do by hand (the peer exported as it is and run by ONNX Runtime, or by OpenVINO
in float32 and in its default precision for this processor); then cnnlab's paths past float32: bfloat16 in
OpenVINO, and int8 (quantized on random calibration images: with random weights, agreement is what they show)."""


def onnxruntime_paths(ours: nn.Module, theirs: nn.Module, x: Tensor, *, cnnlab: bool) -> dict[str, tuple[Any, float]]:
    """The ONNX Runtime paths of :data:`PATHS` for inputs shaped like ``x`` (any batch), each with its preparation
    time in seconds: ``onnxruntime_cnnlab`` when ``cnnlab``, ``onnxruntime_peer`` always; none when onnxruntime is
    not installed."""
    makers: dict[str, Callable[[], Any]] = {
        "onnxruntime_peer": lambda: InferenceModel(
            theirs, OnnxRuntimeRunner(onnx_bytes(theirs, x), tuple(x.shape[1:])), backend="onnxruntime",
            channels_last=False,
        )
    }  # fmt: skip
    if cnnlab:
        makers["onnxruntime_cnnlab"] = lambda: optimize_for_inference(ours, example_input=x, backend="onnxruntime")
    paths = {}
    try:
        for name, make in makers.items():
            start = time.perf_counter()
            paths[name] = (make(), time.perf_counter() - start)
    except MissingDependencyError:
        return {}
    return paths


def low_precision_paths(
    ours: nn.Module, theirs: nn.Module, x: Tensor, calibration: list[Tensor]
) -> dict[str, tuple[Any, float]]:
    """The OpenVINO and int8 paths of :data:`PATHS` for inputs shaped like ``x``, each with its preparation time
    (int8: the export, the quantization on ``calibration`` and the runtime's compilation); the OpenVINO ones only
    where OpenVINO is installed, none without ONNX Runtime."""
    shape = tuple(x.shape[1:])

    def peer_openvino(hint: str | None) -> InferenceModel:
        runner = OpenVinoRunner(onnx_bytes(theirs, x), shape, hint=hint)
        return InferenceModel(theirs, runner, backend="openvino", channels_last=False)

    def ours_at(backend: str, precision: str) -> InferenceModel:
        return optimize_for_inference(
            ours,
            example_input=x,
            backend=backend,
            precision=precision,
            calibration=calibration,  # type: ignore[arg-type]
        )

    makers: dict[str, Callable[[], Any]] = {"onnxruntime_int8": lambda: ours_at("onnxruntime", "int8")}
    makers |= {
        "openvino_peer_f32": lambda: peer_openvino("f32"),
        "openvino_peer_default": lambda: peer_openvino(None),
        "openvino_bf16": lambda: ours_at("openvino", "bf16"),
        "openvino_int8": lambda: ours_at("openvino", "int8"),
    }
    paths = {}
    for name, make in makers.items():
        start = time.perf_counter()
        try:
            paths[name] = (make(), time.perf_counter() - start)
        except MissingDependencyError:
            continue
    return paths


@contextlib.contextmanager
def stdout_to_devnull() -> Iterator[None]:
    """File descriptor 1 pointed at /dev/null for the block: what C++ code prints there (PyTorch's ONNX exporter on
    a failure) stays out of the report, which goes to stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def bench_onnxruntime(theirs: nn.Module, x: Tensor, cfg: BenchConfig) -> dict[str, Any] | None:
    """ONNX Runtime on the peer exported as it is (``ours_s``) against the peer's eager model (``theirs_s``), at
    batch 1 and at the batch of ``x``; ``None`` without onnxruntime."""
    theirs.eval()
    try:
        with stdout_to_devnull():  # a failed export prints the whole TorchScript graph from C++
            paths = onnxruntime_paths(theirs, theirs, x, cnnlab=False)
    except Exception as e:  # an operator ONNX cannot express at this size (VGG's 7x7 pool of a 3x3 map at 112 px)
        error = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
        return {"latency_b1": error, "throughput": error}
    if not paths:
        return None
    ort, _ = paths["onnxruntime_peer"]
    one = x[:1]
    return {
        "latency_b1": guarded(
            lambda: compare(
                inference(ort, one), inference(theirs, one), images=1, repeats=cfg.latency_repeats,
                min_sample_s=cfg.min_sample_s,
            )
        ),
        "throughput": guarded(
            lambda: compare(inference(ort, x), inference(theirs, x), images=len(x), repeats=cfg.repeats)
        ),
    }  # fmt: skip


def bench_optimized(cfg: BenchConfig) -> dict[str, Any]:
    """``optimize_for_inference`` on ``cfg.optimize_model`` against the peer's eager model and against ONNX Runtime,
    interleaved, at batch 1 and at the bench batch."""
    ours, theirs, peer = build_pair(cfg.optimize_model)
    size = model_size(ours, cfg.optimize_size)
    x = torch.randn(cfg.batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    calibrate_norms(theirs, x)  # realistic activation scale for the prediction check
    load_pretrained(ours, theirs)
    theirs.eval()
    start = time.perf_counter()
    fast = optimize_for_inference(ours, example_input=x, backend=cfg.optimize_backend)  # type: ignore[arg-type]
    compile_s = time.perf_counter() - start
    prepared = {"peer_eager": (theirs, 0.0), "optimized": (fast, compile_s)}
    prepared |= onnxruntime_paths(ours, theirs, x, cnnlab=fast.backend != "onnxruntime")
    if cfg.low_precision:
        calibration = [torch.randn(cfg.batch, 3, size, size, generator=torch.Generator().manual_seed(2))]
        prepared |= low_precision_paths(ours, theirs, x, calibration)
    paths = {name: run for name, (run, _) in prepared.items()}
    with torch.no_grad():
        reference = theirs(x)
        exact = copy.deepcopy(theirs).double()(x.double())  # float64: the rounding error float32 eager makes
        outs = {name: run(x) for name, run in paths.items()}
    flops = 2 * count_macs(ours, (3, size, size))  # the same architecture as the peer
    b1 = warm_interleaved(
        {name: inference(run, x[:1]) for name, run in paths.items()},
        images=1,
        repeats=cfg.latency_repeats,
        min_sample_s=cfg.min_sample_s,
    )
    batch = warm_interleaved(
        {name: inference(run, x) for name, run in paths.items()}, images=cfg.batch, repeats=cfg.repeats
    )
    out = outs["optimized"]
    return {
        "name": cfg.optimize_model,
        "status": "ok",
        "peer": f"{peer.library}:{peer.name}",
        "backend": fast.backend,
        "size": size,
        "batch": cfg.batch,
        "compile_s": compile_s,
        "max_abs_diff": (out - reference).abs().max().item(),
        "eager_fp32_error": (reference.double() - exact).abs().max().item(),
        "output_absmax": reference.abs().max().item(),
        "openvino_default": getattr(getattr(paths.get("openvino_peer_default"), "runner", None), "precision", None),
        "same_top1": (out.argmax(1) == reference.argmax(1)).float().mean().item(),
        "throughput": asdict(Comparison(batch["optimized"], batch["peer_eager"])),
        "gflops_optimized": flops / batch["optimized"] / 1e9,
        "gflops_peer_eager": flops / batch["peer_eager"] / 1e9,
        "paths": {
            name: {
                "prepare_s": prepared[name][1],
                "b1_s": b1[name],
                "batch_s": batch[name],
                "gflops": flops / batch[name] / 1e9,
                "max_abs_diff": (outs[name] - reference).abs().max().item(),
                "same_top1": (outs[name].argmax(1) == reference.argmax(1)).float().mean().item(),
            }
            for name in paths
        },
    }
