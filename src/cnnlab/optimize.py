"""Optimizing a model for inference: batch norm folded into the convolutions, channels-last memory, a frozen graph.

In eval mode a batch norm is an affine map per channel, ``y = (x - mean) / sqrt(var + eps) * gamma + beta``
(Ioffe & Szegedy 2015, Alg. 2 with the population statistics), so when it directly follows a convolution it
can be folded into that convolution's weight and bias: ``W' = W * s`` and ``b' = (b - mean) * s + beta`` with
``s = gamma / sqrt(var + eps)`` per output channel. The network computes the same function with one pass
over memory fewer per layer.

:func:`optimize_for_inference` applies the fold, switches to channels-last (NHWC) memory, in which oneDNN's
convolutions run without reordering, and by default compiles the result with ``torch.compile`` (inductor,
weights frozen), which fuses each convolution with the ReLU and the residual addition after it. Its
``"onnxruntime"`` and ``"openvino"`` backends instead export the folded model to ONNX once (:func:`onnx_bytes`, in
memory) and run it in an ONNX Runtime session or an OpenVINO compiled model, what a user who wants fast CPU
inference would otherwise set up by hand.

``precision`` chooses the arithmetic. ``"fp32"`` (the default): the outputs equal the eager model's up to float
rounding. ``"bf16"`` (torch's backends and OpenVINO): the weights and activations in bfloat16 (Kalamkar et al. 2019),
which CPUs with AVX512-BF16 or AMX run at 2-3 times the float32 rate; its rounding grows with depth (0.5-1% of the
logits' scale on a ResNet-20, about 10% on a random-weight ResNet-50, issue 27's benchmark).
``"int8"`` (the ONNX backends): post-training static quantization (Jacob et al. 2018, "Quantization and Training of
Neural Networks for Efficient Integer-Arithmetic-Only Inference"; Krishnamoorthi 2018, "Quantizing deep
convolutional networks for efficient inference: A whitepaper"): :func:`quantize_int8` runs ONNX Runtime's static
quantizer on calibration images (per output channel symmetric int8 weights, per tensor asymmetric uint8
activations, min-max ranges) and writes QuantizeLinear/DequantizeLinear pairs, a standard ONNX file that ONNX
Runtime runs with its int8 kernels and OpenVINO with its own (VNNI, AMX-INT8).

May import: cnnlab.errors, cnnlab.models (the input check).
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import logging
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.fx
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from cnnlab.errors import CnnlabError, CnnlabWarning, InputShapeError, MissingDependencyError, ModelArgumentError
from cnnlab.models.base import run_input_checks

Backend = Literal["compile", "eager", "onnxruntime", "openvino"]
BACKENDS: tuple[Backend, ...] = ("compile", "eager", "onnxruntime", "openvino")
Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "int8")
BACKEND_PRECISIONS: dict[str, tuple[Precision, ...]] = {
    "compile": ("fp32", "bf16"),
    "eager": ("fp32", "bf16"),
    "onnxruntime": ("fp32", "int8"),  # its CPU provider has no bfloat16 convolutions
    "openvino": ("fp32", "bf16", "int8"),
}
"""The precisions each backend runs (int8 needs an ONNX runtime: torch's int8 path is a separate toolchain)."""

OPENVINO_HINTS: dict[str, str] = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
"""OpenVINO's INFERENCE_PRECISION_HINT for each precision; an int8 model's layers that are not quantized (the
pooling, the classifier's softmax inputs) stay float32."""


COMPILE_OPTIONS = {"freezing": True}
"""Inductor settings of the ``"compile"`` backend: weights frozen into the graph as constants (so convolutions
get their weights pre-packed for oneDNN)."""


class InferenceOnlyError(CnnlabError, RuntimeError):
    """An optimized inference model was asked to train."""


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    """A plain 2-d convolution whose output goes straight into an eval-mode batch norm over its channels."""
    return (
        type(conv) is nn.Conv2d
        and isinstance(bn, nn.BatchNorm2d)
        and bn.track_running_stats
        and bn.running_mean is not None
        and bn.num_features == conv.out_channels
    )


def _pairs_from_graph(model: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) module names where the bn's only input is the conv's output and the conv has no other user.

    Each module must be called exactly once in the traced graph (a shared module cannot be folded for one of
    its uses only).
    """
    graph = torch.fx.symbolic_trace(model).graph
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or len(node.users) != 1:
            continue
        (user,) = node.users
        sole_input = user.op == "call_module" and user.args == (node,) and not user.kwargs
        if sole_input and calls[node.target] == 1 and calls[user.target] == 1:
            pairs.append((node.target, user.target))
    return pairs


def _pairs_from_children(model: nn.Module) -> list[tuple[str, str]]:
    """The fallback for models that ``torch.fx`` cannot trace: neighbours in an ``nn.Sequential`` (which
    includes the ``conv``/``bn`` pair of a :class:`~cnnlab.layers.ConvBnAct`)."""
    pairs = []
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            pairs += [(prefix + a, prefix + b) for a, b in itertools.pairwise(names)]
    return pairs


def fold_conv_bn(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode in which every batch norm that directly follows a convolution is folded
    into it and replaced by ``nn.Identity``.

    The copy keeps the model's class, attributes and hooks (the input check of cnnlab models), so it is a
    drop-in for inference; it computes the eval-mode function of ``model`` up to float rounding. Pairs are
    found on the ``torch.fx`` graph (so residual blocks whose ``forward`` calls ``conv1``, ``bn1`` by name
    work as well as ``nn.Sequential``); a model that fx cannot trace falls back to sequential neighbours.
    Batch norms that follow something else (pre-activation blocks) stay as they are.
    """
    if not isinstance(model, nn.Module):
        raise ModelArgumentError(f"fold_conv_bn expects an nn.Module, got {type(model).__name__}")
    folded = copy.deepcopy(model).eval()
    try:
        pairs = _pairs_from_graph(folded)
    except Exception:  # any tracing failure (data-dependent control flow, untraceable ops)
        pairs = _pairs_from_children(folded)
    for conv_name, bn_name in pairs:
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        if not _foldable(conv, bn):
            continue
        fused = fuse_conv_bn_eval(conv, bn)
        fused.weight.requires_grad_(False)
        fused.bias.requires_grad_(False)
        _set_submodule(folded, conv_name, fused)
        _set_submodule(folded, bn_name, nn.Identity())
    return folded


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


class InferenceModel(nn.Module):
    """An inference-only wrapper around an optimized network; ``model.train()`` raises
    :class:`InferenceOnlyError` (its batch norms are folded away: train the original instead).

    ``module`` is the folded eager model (with its attributes and input check); a compiled ``runner``, when
    there is one, runs it.
    """

    def __init__(
        self, module: nn.Module, runner: Any, *, backend: Backend, channels_last: bool, precision: Precision = "fp32"
    ) -> None:
        super().__init__()
        self.module = module
        self.runner = runner if runner is not module else None
        self.backend = backend
        self.channels_last = channels_last
        self.precision = precision
        # torch's bf16 path takes bfloat16 inputs and gives float32 outputs; the ONNX runners convert for themselves
        self.input_dtype = torch.bfloat16 if precision == "bf16" and backend in ("compile", "eager") else None
        super().train(False)

    def train(self, mode: bool = True) -> InferenceModel:
        if mode:
            raise InferenceOnlyError(
                "this model was optimized for inference (its batch norms are folded into the convolutions) and cannot "
                "train; train the original model and call cnnlab.optimize_for_inference on it again"
            )
        return self

    def forward(self, x: Tensor) -> Any:
        if self.channels_last and isinstance(x, Tensor) and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.input_dtype is not None and isinstance(x, Tensor):
            x = x.to(self.input_dtype)
        with torch.inference_mode():
            if self.runner is None:
                out = self.module(x)
            else:
                run_input_checks(self.module, x)  # the input check, which the compiled graph lacks
                out = self.runner(x)
        return out.float() if self.input_dtype is not None and isinstance(out, Tensor) else out


def optimize_for_inference(
    model: nn.Module,
    *,
    example_input: Tensor | None = None,
    backend: Backend = "compile",
    channels_last: bool = True,
    precision: Precision = "fp32",
    calibration: Iterable[Tensor] | None = None,
) -> InferenceModel:
    """A faster, inference-only version of ``model`` that computes the same predictions (in float32 by default).

    Steps: :func:`fold_conv_bn`; channels-last weights and inputs (``channels_last``); then ``backend``:

    * ``"compile"`` (default): ``torch.compile`` with inductor and the weights frozen into the graph, which
      fuses each convolution with the ops after it and generates vectorised code for the rest. It needs a C++
      compiler and compiles once per input shape (about 15-30 s for ResNet-50 on one core); that first
      compilation runs here on ``example_input``. Where compiling fails, a warning says so and the eager
      path is used.
    * ``"eager"``: only the fold and the memory format.
    * ``"onnxruntime"``: the folded model exported to ONNX in memory (traced once on ``example_input``, the
      batch axis left free, height and width fixed) and run by an ONNX Runtime session with as many intra-op
      threads as torch uses; tensors in, tensors out. ``channels_last`` does not apply (ONNX Runtime picks its
      own layouts). Needs ``pip install onnxruntime``.
    * ``"openvino"``: the same export run by OpenVINO on the CPU (:class:`OpenVinoRunner`: the latency hint, as
      many threads as torch uses). Needs ``pip install openvino`` (``cnnlab[openvino]``).

    ``precision`` (:data:`BACKEND_PRECISIONS` says which backend runs which): ``"fp32"``; ``"bf16"``, the folded
    weights cast to bfloat16 (torch's backends: inputs are cast on the way in, outputs come back as float32) or
    OpenVINO's bfloat16 inference hint; ``"int8"``, the export quantized by :func:`quantize_int8` on
    ``calibration``, an iterable of input batches (a few hundred images of the training split, normalised as the
    model sees them).

    ``example_input`` defaults to one image at the model's ``default_input_size`` (or 3x224x224): pass a
    batch of the shape you will run. The model itself is left untouched.
    """
    if backend not in BACKENDS:
        raise ModelArgumentError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if precision not in BACKEND_PRECISIONS[backend]:
        runs = [b for b in BACKENDS if precision in BACKEND_PRECISIONS[b]]
        raise ModelArgumentError(
            f"precision must be one of {BACKEND_PRECISIONS[backend]} for the {backend} backend, got {precision!r}"
            + (f" ({precision} runs on: {', '.join(runs)})" if runs else "")
        )
    if precision == "int8" and calibration is None:
        raise ModelArgumentError(
            "precision int8 needs calibration: an iterable of input batches (a few hundred training images, "
            "normalised as the model sees them) from which the activation ranges are measured"
        )
    if backend in ("onnxruntime", "openvino"):
        return _exported_model(model, example_input, backend, precision, calibration)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    folded = _frozen_fold(model).to(memory_format=memory_format)
    if precision == "bf16":
        folded = folded.to(torch.bfloat16)
    if backend == "eager":
        return InferenceModel(folded, folded, backend=backend, channels_last=channels_last, precision=precision)
    if example_input is None:
        example_input = _default_example(folded)
    example_input = example_input.contiguous(memory_format=memory_format)
    if precision == "bf16":
        example_input = example_input.to(torch.bfloat16)
    with torch.inference_mode():
        run_input_checks(folded, example_input)  # a bad example fails here with the model's own message
        runner = torch.compile(_without_hooks(folded), dynamic=False, options=dict(COMPILE_OPTIONS))
        try:
            runner(example_input)  # compile now, not in the user's first batch
        except Exception as e:  # no C++ compiler, an op inductor cannot lower, ...
            warnings.warn(
                f"torch.compile failed ({type(e).__name__}: {str(e)[:200]}); using the eager folded model",
                CnnlabWarning,
                stacklevel=2,
            )
            return InferenceModel(folded, folded, backend="eager", channels_last=channels_last, precision=precision)
    return InferenceModel(folded, runner, backend=backend, channels_last=channels_last, precision=precision)


def _frozen_fold(model: nn.Module) -> nn.Module:
    """:func:`fold_conv_bn`'s copy of ``model`` with no parameter requiring gradients (inference only)."""
    folded = fold_conv_bn(model)
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded


def _default_example(model: nn.Module) -> Tensor:
    """One random image at the model's ``default_input_size`` (or 3x224x224)."""
    return torch.randn(1, *getattr(model, "default_input_size", (3, 224, 224)))


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """The warnings that tracing a cnnlab model for export raises and that say nothing about the result."""
    with warnings.catch_warnings():
        # TorchScript and the TorchScript-based ONNX exporter are deprecated in favour of torch.export; they still
        # give the most portable files, so their FutureWarnings are silenced here.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        # option-A shortcuts subsample with a strided slice, which the exporter leaves to run time
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        # the model's input check (a forward pre-hook) is traced as constants: channels and minimum size are fixed
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def onnx_bytes(net: nn.Module, example: Tensor) -> bytes:
    """``net`` (in eval mode) traced on ``example`` as an ONNX model: input ``image``, output ``logits``, the
    batch axis of both free. The one export call behind ``cnnlab export`` and the ``"onnxruntime"`` backend."""
    buf = io.BytesIO()
    with quiet_export(), torch.no_grad():
        torch.onnx.export(
            net,
            (example,),
            buf,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )
    return buf.getvalue()


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as e:
        raise MissingDependencyError(
            "the onnxruntime backend and int8 quantization need ONNX Runtime: pip install onnxruntime"
        ) from e
    return onnxruntime


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError as e:
        raise MissingDependencyError("the openvino backend needs OpenVINO: pip install 'cnnlab[openvino]'") from e
    return openvino


class _OnnxRunner:
    """A compiled ONNX model with one input, fixed to the example's channels, height and width: torch tensors in
    (converted to float32 arrays), torch tensors out (one output as a tensor, several as a tuple)."""

    runtime = ""  # how messages name it

    def __init__(self, sample_shape: tuple[int, ...]) -> None:
        self.sample_shape = sample_shape

    def _array(self, x: Tensor) -> Any:
        if tuple(x.shape[1:]) != self.sample_shape:
            shape = " x ".join(map(str, self.sample_shape))
            raise InputShapeError(
                f"this {self.runtime} model was exported for inputs of shape N x {shape}, got {tuple(x.shape)}; "
                "call optimize_for_inference again with an example_input of that size"
            )
        return x.detach().to("cpu", torch.float32).contiguous().numpy()

    @staticmethod
    def _tensors(arrays: Sequence[Any], device: torch.device) -> Any:
        outs = [torch.from_numpy(a).to(device) for a in arrays]
        return outs[0] if len(outs) == 1 else tuple(outs)


class OnnxRuntimeRunner(_OnnxRunner):
    """An ONNX Runtime session (CPU provider, all graph optimizations, as many intra-op threads as torch uses)."""

    runtime = "ONNX Runtime"

    def __init__(self, model: bytes, sample_shape: tuple[int, ...], *, threads: int | None = None) -> None:
        super().__init__(sample_shape)
        ort = _import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()  # torch's own, for a fair comparison
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: Tensor) -> Any:
        return self._tensors(self.session.run(None, {self.input_name: self._array(x)}), x.device)


class OpenVinoRunner(_OnnxRunner):
    """An OpenVINO model compiled for the CPU with the latency hint and as many threads as torch uses.

    ``hint`` is OpenVINO's INFERENCE_PRECISION_HINT (``"f32"``, ``"bf16"``; ``None``: OpenVINO's default for this
    processor, bfloat16 where it has AVX512-BF16 or AMX); :attr:`precision` says what it runs in."""

    runtime = "OpenVINO"

    def __init__(
        self, model: bytes, sample_shape: tuple[int, ...], *, hint: str | None = "f32", threads: int | None = None
    ) -> None:
        super().__init__(sample_shape)
        ov = _import_openvino()
        core = ov.Core()
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
        }
        if hint is not None:
            config["INFERENCE_PRECISION_HINT"] = hint
        self.compiled = core.compile_model(core.read_model(model), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.precision: str = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()

    def __call__(self, x: Tensor) -> Any:
        results = self.request.infer({0: self._array(x)})
        return self._tensors([results[out].copy() for out in self.compiled.outputs], x.device)  # copies: the
        # request reuses its output buffers


class _CalibrationReader:
    """ONNX Runtime's CalibrationDataReader protocol over torch batches: ``{input name: float32 array}`` per call,
    ``None`` at the end."""

    def __init__(self, name: str, batches: Iterable[Tensor]) -> None:
        self.name, self.batches = name, iter(batches)

    def get_next(self) -> dict[str, Any] | None:
        batch = next(self.batches, None)
        return None if batch is None else {self.name: batch.detach().to("cpu", torch.float32).contiguous().numpy()}


def quantize_int8(model: bytes, calibration: Iterable[Tensor]) -> bytes:
    """An ONNX model (:func:`onnx_bytes`' ``image`` input) quantized to int8 by ONNX Runtime's static quantizer:
    each convolution's and linear layer's weights symmetric int8 per output channel, activations asymmetric uint8
    per tensor with the min-max ranges that ``calibration`` (input batches) reaches, as QuantizeLinear and
    DequantizeLinear pairs (the QDQ format: the file says which tensors are int8, each runtime fuses the pairs
    into its own int8 kernels)."""
    _import_onnxruntime()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp, "model.onnx"), Path(tmp, "int8.onnx")
        source.write_bytes(model)
        reader = _CalibrationReader("image", calibration)
        with _without_preprocessing_advice():
            quantize_static(
            source, target, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )  # fmt: skip
        return target.read_bytes()


class _PreprocessingAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    """ONNX Runtime's quantizer advises (on the root logger) to run its pre-processing first: shape inference and
    graph optimization, which fold batch norms as :func:`fold_conv_bn` already did; on the main job's model it gave
    the same predictions and the same largest difference on the 1,000 test digits (issue 27): the advice is
    left out."""
    advice = _PreprocessingAdvice()
    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def _exported_model(
    model: nn.Module, example_input: Tensor | None, backend: Backend, precision: Precision, calibration: Any
) -> InferenceModel:
    """The ``"onnxruntime"`` and ``"openvino"`` backends of :func:`optimize_for_inference`."""
    if backend == "openvino":  # missing packages fail here, before the fold and the export
        _import_openvino()
    if backend == "onnxruntime" or precision == "int8":  # ONNX Runtime's quantizer makes the int8 file for both
        _import_onnxruntime()
    folded = _frozen_fold(model)
    example = _default_example(folded) if example_input is None else example_input.contiguous()
    with torch.inference_mode():
        run_input_checks(folded, example)  # a bad example fails here with the model's own message
    graph = onnx_bytes(_without_hooks(folded), example)
    if precision == "int8":
        graph = quantize_int8(graph, calibration)
    shape = tuple(example.shape[1:])
    if backend == "onnxruntime":
        runner: Any = OnnxRuntimeRunner(graph, shape)
    else:
        runner = OpenVinoRunner(graph, shape, hint=OPENVINO_HINTS[precision])
    return InferenceModel(folded, runner, backend=backend, channels_last=False, precision=precision)


def _without_hooks(module: nn.Module) -> nn.Module:
    """A shallow copy of ``module`` without its own forward pre-hooks (they check Python-level shapes, which a
    trace would bake in as constants); the submodules are shared."""
    bare = copy.copy(module)
    bare._forward_pre_hooks = type(module._forward_pre_hooks)()
    return bare


__all__ = [
    "BACKENDS",
    "BACKEND_PRECISIONS",
    "PRECISIONS",
    "InferenceModel",
    "InferenceOnlyError",
    "OnnxRuntimeRunner",
    "OpenVinoRunner",
    "fold_conv_bn",
    "onnx_bytes",
    "optimize_for_inference",
    "quantize_int8",
]
