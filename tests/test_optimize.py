"""Conv-BN folding and the optimized inference path compute the eager model's function; the folded layers are
gone; an optimized model refuses to train."""

from __future__ import annotations

import copy
import shutil
import sys

import pytest
import torch
import torchvision
from torch import Tensor, nn

import cnnlab
from cnnlab.errors import MissingDependencyError
from cnnlab.optimize import InferenceModel, InferenceOnlyError
from tests.helpers import randomize_norm_stats


def norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def assert_same_function(fast: nn.Module, model: nn.Module, x: Tensor) -> None:
    """``fast(x)`` equals the eval-mode ``model(x)`` to 1e-4 of the output scale, and is as close to the float64
    result as the float32 eager model itself (the fold may change rounding, not the function)."""
    exact_model = copy.deepcopy(model).double()
    with torch.no_grad():
        eager, out, exact = model(x), fast(x), exact_model(x.double())
    scale = max(1.0, eager.abs().max().item())
    assert (out - eager).abs().max().item() <= 1e-4 * scale
    eager_err = (eager.double() - exact).abs().max().item()
    assert (out.double() - exact).abs().max().item() <= 2 * eager_err + 1e-6 * scale


SMALL_MODELS = ["cifar_resnet20", "resnet18", "resnet50", "se_resnet50", "resnext50_32x4d", "cifar_plain20"]


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_folding_registered_models(name: str) -> None:
    model = randomize_norm_stats(cnnlab.create_model(name, num_classes=10)).eval()
    folded = cnnlab.fold_conv_bn(model)
    assert norms(folded) == [] and len(norms(model)) > 0  # every BN followed a conv; the original is untouched
    assert type(folded) is type(model)
    assert_same_function(folded, model, torch.randn(2, 3, 32, 32))


def test_folding_torchvision_resnet() -> None:
    """torchvision's blocks call conv1, bn1, relu by name in forward: the pairs come from the fx graph."""
    model = randomize_norm_stats(torchvision.models.resnet18(num_classes=10)).eval()
    folded = cnnlab.fold_conv_bn(model)
    assert norms(folded) == []
    assert_same_function(folded, model, torch.randn(2, 3, 32, 32))
    assert_same_function(cnnlab.optimize_for_inference(model, backend="eager"), model, torch.randn(2, 3, 32, 32))


def test_preactivation_norms_stay() -> None:
    """A BN that follows an addition or another BN-ReLU (pre-activation blocks) has no conv to fold into."""
    model = randomize_norm_stats(cnnlab.create_model("cifar_preact_resnet110", num_classes=10)).eval()
    folded = cnnlab.fold_conv_bn(model)
    assert 0 < len(norms(folded)) < len(norms(model))
    assert_same_function(folded, model, torch.randn(2, 3, 32, 32))


class _Shared(nn.Module):
    """A conv whose output feeds a BN and is also returned: folding the BN would change the second output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.seq = nn.Sequential(nn.Conv2d(4, 4, 1, bias=True), nn.BatchNorm2d(4), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return torch.cat([self.seq(self.bn(y)), y], dim=1)


def test_only_sole_consumers_are_folded() -> None:
    model = randomize_norm_stats(_Shared()).eval()
    folded = cnnlab.fold_conv_bn(model)
    assert isinstance(folded.bn, nn.BatchNorm2d)  # kept: conv's output has two users
    assert isinstance(folded.seq[1], nn.Identity) and folded.seq[0].bias is not None
    assert_same_function(folded, model, torch.randn(2, 3, 16, 16))


def test_fold_equals_formula() -> None:
    """One conv and BN against the fold written out: with s = g / sqrt(v + eps), W' = W * s, b' = (b - m) * s + beta."""
    conv, bn = nn.Conv2d(2, 3, 3, bias=True), nn.BatchNorm2d(3, eps=1e-3)
    randomize_norm_stats(bn)
    folded = cnnlab.fold_conv_bn(nn.Sequential(conv, bn))
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(folded[0].weight, conv.weight * s[:, None, None, None])
    torch.testing.assert_close(folded[0].bias, (conv.bias - bn.running_mean) * s + bn.bias)


def test_fold_rejects_non_modules() -> None:
    with pytest.raises(cnnlab.ModelArgumentError, match=r"expects an nn\.Module"):
        cnnlab.fold_conv_bn("resnet18")  # type: ignore[arg-type]


def test_optimized_model_is_inference_only() -> None:
    model = randomize_norm_stats(cnnlab.create_model("resnet18", num_classes=10)).train()
    fast = cnnlab.optimize_for_inference(model, backend="eager")
    assert isinstance(fast, InferenceModel) and not fast.training
    assert model.training and len(norms(model)) == 20  # the original is untouched and still trains
    with pytest.raises(InferenceOnlyError, match="cannot train"):
        fast.train()
    fast.eval()  # harmless
    with pytest.raises(cnnlab.InputShapeError, match="got 1 channels"):  # the model's input check survives
        fast(torch.randn(1, 1, 32, 32))
    out = fast(torch.randn(1, 3, 32, 32))
    assert not out.requires_grad
    assert_same_function(fast, model.eval(), torch.randn(2, 3, 32, 32))
    with pytest.raises(cnnlab.ModelArgumentError, match="backend must be one of"):
        cnnlab.optimize_for_inference(model, backend="tensorrt")  # type: ignore[arg-type]


HAS_CXX = any(shutil.which(c) for c in ("g++", "c++", "clang++"))


@pytest.mark.skipif(not HAS_CXX, reason="torch.compile's CPU backend needs a C++ compiler")
def test_compiled_model_matches_eager() -> None:
    """The default backend (torch.compile, frozen weights, channels-last) on a small model."""
    model = randomize_norm_stats(cnnlab.create_model("cifar_resnet20")).eval()
    x = torch.randn(4, 3, 32, 32)
    fast = cnnlab.optimize_for_inference(model, example_input=x)
    assert fast.backend == "compile"
    assert_same_function(fast, model, x)
    with pytest.raises(cnnlab.InputShapeError):  # a compiled graph still gets the input check
        fast(torch.randn(4, 2, 32, 32))


def test_failed_compilation_falls_back_to_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(module: nn.Module, **kwargs: object) -> object:
        def run(x: Tensor) -> Tensor:
            raise RuntimeError("no C++ compiler found")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    model = cnnlab.create_model("cifar_resnet20").eval()
    with pytest.warns(cnnlab.CnnlabWarning, match="torch.compile failed.*no C\\+\\+ compiler"):
        fast = cnnlab.optimize_for_inference(model, example_input=torch.randn(2, 3, 32, 32))
    assert fast.backend == "eager"
    assert_same_function(fast, model, torch.randn(2, 3, 32, 32))


ORT_MODELS = [
    ("cifar_resnet20", 32), ("resnet18", 64), ("shufflenet_v2_x1_0", 64), ("mobilenet_v2", 64),
    ("deeplabv3_cifar_resnet20", 32),  # a dense output: N x classes x H x W
]  # fmt: skip


@pytest.mark.parametrize(("name", "size"), ORT_MODELS)
def test_onnxruntime_backend_matches_eager(name: str, size: int) -> None:
    """The folded model exported to ONNX and run in ONNX Runtime: the eager function, the same top-1, any batch."""
    pytest.importorskip("onnxruntime")
    model = randomize_norm_stats(cnnlab.create_model(name, num_classes=10, in_chans=3)).eval()
    fast = cnnlab.optimize_for_inference(model, example_input=torch.randn(2, 3, size, size), backend="onnxruntime")
    assert fast.backend == "onnxruntime" and fast.runner.session.get_session_options().intra_op_num_threads == (
        torch.get_num_threads()
    )
    x = torch.randn(5, 3, size, size)  # another batch size than the export's
    assert_same_function(fast, model, x)
    with torch.no_grad():
        assert torch.equal(fast(x).argmax(1), model(x).argmax(1))
    assert isinstance(fast(x[:1]), Tensor) and fast(x[:1]).shape == (1, *model(x[:1]).shape[1:])


def test_onnxruntime_backend_checks_inputs() -> None:
    pytest.importorskip("onnxruntime")
    model = cnnlab.create_model("cifar_resnet20").eval()
    fast = cnnlab.optimize_for_inference(model, example_input=torch.randn(1, 3, 32, 32), backend="onnxruntime")
    with pytest.raises(cnnlab.InputShapeError, match="got 2 channels"):  # the model's own input check
        fast(torch.randn(1, 2, 32, 32))
    with pytest.raises(cnnlab.InputShapeError, match=r"exported for inputs of shape N x 3 x 32 x 32"):
        fast(torch.randn(1, 3, 40, 40))
    with pytest.raises(InferenceOnlyError):
        fast.train()


def test_onnxruntime_backend_without_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    model = cnnlab.create_model("cifar_resnet20").eval()
    with pytest.raises(MissingDependencyError, match="pip install onnxruntime"):
        cnnlab.optimize_for_inference(model, backend="onnxruntime")
