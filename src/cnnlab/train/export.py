"""Exporting a trained model to ONNX or TorchScript, with BatchNorm folded into the preceding convolutions.

Folding (Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
Inference", Sec. 3.2) is :func:`cnnlab.optimize.fold_conv_bn`, the same pass that
:func:`cnnlab.optimize_for_inference` starts with. The ONNX file is checked against the eager model in onnxruntime
when onnxruntime is installed. With ``calibration`` (input batches) the ONNX file is quantized to int8
(:func:`cnnlab.optimize.quantize_int8`: QuantizeLinear/DequantizeLinear pairs around int8 weights).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from cnnlab.errors import CnnlabError, MissingDependencyError
from cnnlab.optimize import fold_conv_bn, onnx_bytes, quantize_int8, quiet_export

Format = Literal["onnx", "torchscript"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript")


class ExportError(CnnlabError, RuntimeError):
    """A model that the exporter cannot convert, or an export that disagrees with the eager model."""


def export_model(
    model: nn.Module, example: Tensor, path: str | os.PathLike[str], *, fmt: Format, fold: bool = True,
    metadata: dict[str, Any] | None = None, calibration: Sequence[Tensor] | None = None,
) -> Path:  # fmt: skip
    """Write ``model`` (traced on ``example``, batch size free) to ``path``; return the path. With ``calibration``
    (ONNX only, batch norms folded) the file is quantized to int8 on those input batches."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if calibration is not None and (fmt != "onnx" or not fold):
        raise ExportError("int8 export writes ONNX with BatchNorm folded: use --format onnx without --no-fold")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = fold_conv_bn(model) if fold else model.eval()
    with quiet_export():
        return _export(net, example, path, fmt, metadata or {}, calibration)


def _export(net: nn.Module, example: Tensor, path: Path, fmt: str, metadata: dict[str, Any], calibration: Any) -> Path:
    try:
        if fmt == "torchscript":
            with torch.no_grad():
                traced = torch.jit.trace(net, example, check_trace=False)
            extra = {"cnnlab.json": json.dumps(metadata)}
            torch.jit.save(traced, str(path), _extra_files=extra)
        else:
            _export_onnx(net, example, path, metadata, calibration)
    except (ExportError, MissingDependencyError):
        raise
    except Exception as e:
        raise ExportError(f"could not export to {fmt}: {type(e).__name__}: {e}") from e
    return path


def _export_onnx(net: nn.Module, example: Tensor, path: Path, metadata: dict[str, Any], calibration: Any) -> None:
    import onnx

    graph = onnx_bytes(net, example)
    if calibration is not None:
        graph = quantize_int8(graph, calibration)
    proto = onnx.load_from_string(graph)
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(proto, str(path))


def compare_onnx(path: str | os.PathLike[str], model: nn.Module, x: Tensor) -> tuple[float, float]:
    """(the largest absolute difference between onnxruntime's output for ``x`` and the eager model's, the fraction
    of the images of ``x`` whose top-1 class they agree on)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
    with torch.no_grad():
        want = model.eval()(x)
    return float((got - want).abs().max()), float((got.argmax(1) == want.argmax(1)).double().mean())


def check_onnx(path: str | os.PathLike[str], model: nn.Module, x: Tensor, *, atol: float = 1e-4) -> float:
    """The largest absolute difference between onnxruntime's output for ``x`` and the eager model's;
    an ExportError when it exceeds ``atol``."""
    diff, _ = compare_onnx(path, model, x)
    if not diff <= atol:
        raise ExportError(f"the ONNX model differs from PyTorch by {diff:.2e} (> {atol:.0e}) on the check input")
    return diff
