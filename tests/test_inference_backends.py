"""Inference past float32 eager: the OpenVINO backend (the eager function in float32), bfloat16 (torch's and
OpenVINO's: measurably not float32, within a stated tolerance of it), and int8 post-training quantization (an ONNX
file with int8 weights, ``cnnlab export --int8`` and ``cnnlab predict --int8`` on a trained run, its accuracy that
of float32 on the run's test images)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import MissingDependencyError, ModelArgumentError
from cnnlab.optimize import quantize_int8
from cnnlab.train import fit
from cnnlab.train.engine import predict_batches
from cnnlab.train.predict import calibration_batches, input_pipeline, model_from_checkpoint, run_data, with_runtime
from tests.helpers import randomize_norm_stats
from tests.test_optimize import assert_same_function
from tests.train_fixtures import tiny_config, write_mnist

BF16_TOLERANCE = 0.05
"""bfloat16 keeps 8 significant bits (a relative rounding of at most 2**-9 per value); through a network of a few
dozen layers the logits stay within 5% of their scale (measured: 0.5-1% on these models)."""


def logit_gap(out: torch.Tensor, ref: torch.Tensor) -> float:
    """The largest difference from ``ref`` as a fraction of ``ref``'s scale (its largest magnitude, at least 1)."""
    return (out - ref).abs().max().item() / max(1.0, ref.abs().max().item())


@pytest.mark.parametrize(("name", "size"), [("cifar_resnet20", 32), ("resnet18", 64), ("mobilenet_v2", 64)])
def test_openvino_backend_matches_eager(name: str, size: int) -> None:
    """float32 OpenVINO: the eager function to 1e-4 of the output scale, as close to float64 as eager, any batch."""
    pytest.importorskip("openvino")
    model = randomize_norm_stats(cnnlab.create_model(name, num_classes=10, in_chans=3)).eval()
    fast = cnnlab.optimize_for_inference(model, example_input=torch.randn(2, 3, size, size), backend="openvino")
    assert fast.backend == "openvino" and fast.precision == "fp32" and fast.runner.precision == "f32"
    x = torch.randn(5, 3, size, size)  # another batch size than the export's
    assert_same_function(fast, model, x)
    with pytest.raises(cnnlab.InputShapeError, match=r"OpenVINO model was exported for inputs of shape N x 3 x"):
        fast(torch.randn(1, 3, size + 8, size + 8))


@pytest.mark.parametrize("backend", ["eager", "openvino"])
def test_bf16_inference_is_bfloat16_and_within_the_stated_tolerance(backend: str) -> None:
    pytest.importorskip("openvino") if backend == "openvino" else None
    model = randomize_norm_stats(cnnlab.create_model("cifar_resnet20", num_classes=10, in_chans=3)).eval()
    x = torch.randn(8, 3, 32, 32)
    fast = cnnlab.optimize_for_inference(model, example_input=x, backend=backend, precision="bf16")
    with torch.no_grad():
        out, ref = fast(x), model(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert 1e-4 < logit_gap(out, ref) <= BF16_TOLERANCE  # rounded like bfloat16, not float32, and close
    if backend == "openvino":
        assert fast.runner.precision == "bf16"


def test_unsupported_precisions_and_missing_calibration_are_clear_errors() -> None:
    model = cnnlab.create_model("cifar_resnet20").eval()
    with pytest.raises(ModelArgumentError, match=r"for the onnxruntime backend, got 'bf16' \(bf16 runs on: compile"):
        cnnlab.optimize_for_inference(model, backend="onnxruntime", precision="bf16")
    with pytest.raises(ModelArgumentError, match=r"int8 runs on: onnxruntime, openvino"):
        cnnlab.optimize_for_inference(model, backend="compile", precision="int8")
    with pytest.raises(ModelArgumentError, match="precision int8 needs calibration"):
        cnnlab.optimize_for_inference(model, backend="onnxruntime", precision="int8")


def test_openvino_backend_without_openvino(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    model = cnnlab.create_model("cifar_resnet20").eval()
    with pytest.raises(MissingDependencyError, match=r"pip install 'cnnlab\[openvino\]'"):
        cnnlab.optimize_for_inference(model, backend="openvino")


def test_int8_without_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    model = cnnlab.create_model("cifar_resnet20").eval()
    with pytest.raises(MissingDependencyError, match="int8 quantization need ONNX Runtime: pip install onnxruntime"):
        cnnlab.optimize_for_inference(
            model, backend="openvino", precision="int8", calibration=[torch.randn(1, 3, 32, 32)]
        )


def test_quantize_int8_writes_int8_weights_between_quantize_and_dequantize_nodes() -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from cnnlab.optimize import fold_conv_bn, onnx_bytes

    model = randomize_norm_stats(cnnlab.create_model("cifar_resnet20", num_classes=10, in_chans=3)).eval()
    x = torch.randn(4, 3, 32, 32)
    proto = onnx.load_from_string(quantize_int8(onnx_bytes(fold_conv_bn(model), x), [x]))
    ops = [n.op_type for n in proto.graph.node]
    convs = ops.count("Conv")
    # ResNet-20: 6n + 1 = 19 convolutions (its option-A shortcuts pad and add no convolution) and the classifier
    assert convs == 19 and "QuantizeLinear" in ops and "DequantizeLinear" in ops
    int8 = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8) >= convs  # every convolution's weights (and the classifier's) stored as int8


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ResNet (8-16-16 channels) trained for 10 epochs on 128 written digits whose class is a bright band's
    position (unaugmented: a shift would move the band), to about 80% test accuracy in seconds."""
    root = tmp_path_factory.mktemp("int8")
    data = write_mnist(root / "data", n_train=128, n_test=64)
    small = {"layers": [1, 1, 1], "widths": [8, 16, 16]}
    config = tiny_config(data, root / "runs", epochs=10, augment=False, model_kwargs=small, run_name="r",
                         precision="fp32")  # fmt: skip
    return fit(config, log=lambda _s: None).run_dir


def test_int8_export_is_an_int8_onnx_file_that_agrees_with_float32(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out = tmp_path / "m.int8.onnx"
    assert main(["export", str(trained), "--format", "onnx", "--int8", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "int8" in printed and "calibration images: the same top-1 class for" in printed
    proto = onnx.load(str(out))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "BatchNormalization" not in ops
    assert any(t.data_type == onnx.TensorProto.INT8 for t in proto.graph.initializer)
    assert {p.key for p in proto.metadata_props} >= {"model", "classes", "input"}
    assert main(["export", str(trained), "--format", "torchscript", "--int8"]) == 2
    assert "--int8 writes ONNX with BatchNorm folded" in capsys.readouterr().err


def test_calibration_comes_from_the_runs_own_training_split(trained: Path) -> None:
    _, meta = model_from_checkpoint(trained)
    batches = calibration_batches(meta, images=100, batch_size=32)
    assert [len(b) for b in batches] == [32, 32, 32, 4]
    train = run_data(meta).train  # the 128 written digits less the validation split
    assert sum(map(len, batches)) == 100 <= len(train)
    # normalised as the model sees them: the pipeline's mean and std, not raw uint8
    pipeline = input_pipeline(meta)
    raw = torch.cat(batches) * torch.tensor(pipeline.std).view(1, -1, 1, 1) + torch.tensor(pipeline.mean).view(
        1, -1, 1, 1
    )
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_int8_predicts_as_float32_does(
    trained: Path, tmp_path: Path, runtime: str, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip(runtime)
    from PIL import Image

    model, meta = model_from_checkpoint(trained)
    data = run_data(meta)
    images = []
    for i in range(4):  # a handful of test digits as image files
        images.append(str(tmp_path / f"digit{i}.png"))
        Image.fromarray(data.test.x[i, 0].numpy()).save(images[-1])
    lines = {}
    for flags in ([], ["--runtime", runtime, "--int8"]):
        assert main(["predict", str(trained), *images, "--topk", "1", *flags]) == 0
        lines[bool(flags)] = [line.rsplit(" ", 1)[0] for line in capsys.readouterr().out.splitlines()]
    assert lines[True] == lines[False]  # the same top-1 class for every image
    from cnnlab.data import make_loader

    loader = make_loader(data, "test", input_pipeline(meta), batch_size=64)
    fp32, y = predict_batches(model, loader.batches(), device=torch.device("cpu"))
    int8, _ = predict_batches(
        with_runtime(model, meta, runtime, int8=True), loader.batches(), device=torch.device("cpu")
    )
    acc = {k: float((v.argmax(1) == y).double().mean()) for k, v in (("fp32", fp32), ("int8", int8))}
    assert acc["fp32"] >= 0.5  # it learnt something, so agreement means something
    # within 3 of the 64 test images: this small model's margins are narrow (the bench's trained models: 0.2 points)
    assert abs(acc["int8"] - acc["fp32"]) <= 3 / len(y)
    assert np.mean((fp32.argmax(1) == int8.argmax(1)).numpy()) >= 0.9


def test_int8_needs_an_onnx_runtime(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(trained), "x.png", "--int8"]) == 2
    assert "int8 runs on an ONNX runtime: add --runtime onnxruntime or --runtime openvino" in capsys.readouterr().err
