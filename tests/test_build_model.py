"""One way from (name, kwargs as plain data) to a model: ``cnnlab.registry.build_model``. A run trained with a
layer given by name is evaluated, used and exported from its checkpoint; the analyzer's commands take any variant
through ``--model-kwargs``; a checkpoint holds layers as names only."""

from __future__ import annotations

import ast
import json
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.layers import SqueezeExcite
from cnnlab.registry import build_model
from cnnlab.train import TrainConfig
from cnnlab.train.predict import model_from_checkpoint
from tests.train_fixtures import TINY, write_mnist

SE4 = {"name": "se", "reduction": 4}
SRC = Path(cnnlab.__file__).parent


def se_params(c: int, r: int) -> int:
    """Hu et al. 2018: two 1x1 convs C -> C/r -> C with biases."""
    return 2 * c * (c // r) + c + c // r


# ResNet-20 (269,722 params, REFERENCE.md) with an SE block on each of its 9 units, 3 per stage of 16, 32, 64 channels
SE_RESNET20_R4 = 269_722 + 3 * sum(se_params(c, 4) for c in (16, 32, 64))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def se_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``cnnlab train`` for one step (54 training images, batch 64) of the tiny ResNet with SE layers named in
    ``--model-kwargs``."""
    root = tmp_path_factory.mktemp("se")
    write_mnist(root / "data")
    kwargs = {**TINY["model_kwargs"], "attn_layer": SE4}
    args = ["train", "--model", TINY["model"], "--model-kwargs", json.dumps(kwargs), "--data", "mnist",
            "--data-dir", str(root / "data"), "--epochs", "1", "--batch-size", "64", "--no-progress",
            "--out-dir", str(root / "runs"), "--run-name", "se"]  # fmt: skip
    assert main(args) == 0
    return root / "runs" / "se"


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_a_run_with_a_named_layer_is_evaluated_used_and_exported(
    se_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    results = json.loads((se_run / "results.json").read_text())
    assert results["epochs_run"] == 1 and results["splits"] == {"train": 54, "val": 10, "test": 32}
    assert main(["eval", str(se_run)]) == 0  # best.pt on the test split
    out = capsys.readouterr().out
    assert f"accuracy   {results['test']['best']['test_acc']:.4f}\n" in out  # what training reported for best.pt

    model, meta = model_from_checkpoint(se_run)
    se = [m for m in model.modules() if isinstance(m, SqueezeExcite)]
    assert len(se) == 3 and [m.fc1.out_channels for m in se] == [1, 2, 2]  # 4, 8, 8 channels // 4
    assert meta["model_kwargs"] == {**TINY["model_kwargs"], "attn_layer": SE4}  # plain data, as given

    from PIL import Image

    Image.new("L", (28, 28)).save(tmp_path / "blank.png")
    assert main(["predict", str(se_run), str(tmp_path / "blank.png"), "--topk", "1"]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'blank.png'}: ")
    assert main(["export", str(se_run), "--format", "torchscript", "--output", str(tmp_path / "m.pt")]) == 0
    exported, x = torch.jit.load(tmp_path / "m.pt"), torch.randn(2, 1, 28, 28)
    with torch.no_grad():  # the SE layers went with it: the same function as the checkpoint's model (BN folded)
        assert torch.allclose(exported(x), model.eval()(x), atol=1e-5)


def test_the_checkpoint_holds_the_layer_as_plain_data(se_run: Path) -> None:
    for name in ("best.pt", "last.pt"):
        state = torch.load(se_run / name, weights_only=True)  # no classes, no partials
        assert state["config"]["model_kwargs"]["attn_layer"] == SE4 == state["meta"]["model_kwargs"]["attn_layer"]


@pytest.mark.parametrize(
    ("given", "python"),
    [("se", SqueezeExcite), (SE4, partial(SqueezeExcite, reduction=4)), (None, None)],
)
def test_plain_data_builds_the_model_that_classes_build(given: object, python: object) -> None:
    with torch.device("meta"):
        named = build_model("cifar_resnet20", {"attn_layer": given}, num_classes=7, in_chans=1)
        direct = cnnlab.create_model("cifar_resnet20", num_classes=7, in_chans=1, attn_layer=python)
    assert [type(m) for m in named.modules()] == [type(m) for m in direct.modules()]
    assert n_params(named) == n_params(direct) and named.num_classes == 7 and named.in_chans == 1


@pytest.mark.parametrize(
    ("key", "name", "python"),
    [("act_layer", "sigmoid", torch.nn.Sigmoid), ("act_layer", "relu6", torch.nn.ReLU6), ("norm_layer", None, None),
     ("act_layer", "gelu", torch.nn.GELU), ("norm_layer", "batchnorm", torch.nn.BatchNorm2d)],
)  # fmt: skip
def test_activations_and_norms_by_name(key: str, name: object, python: object) -> None:
    with torch.device("meta"):
        named = build_model("cifar_resnet20", {key: name})
        direct = cnnlab.create_model("cifar_resnet20", **{key: python})
    assert [type(m) for m in named.modules()] == [type(m) for m in direct.modules()]
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in named.modules())
    assert has_bn is not (key == "norm_layer" and name is None)


def test_classes_go_to_create_model_and_plain_data_to_build_model() -> None:
    with pytest.raises(ConfigError, match=r"pass layer classes to cnnlab\.create_model"):
        build_model("cifar_resnet20", {"attn_layer": SqueezeExcite})
    with pytest.raises(ConfigError, match=r"unknown layer 'sse'\. Did you mean: se\?"):
        build_model("cifar_resnet20", {"attn_layer": "sse"})
    with torch.device("meta"):
        assert n_params(build_model("cifar_resnet20", {"attn_layer": SE4})) == SE_RESNET20_R4


def test_a_config_stores_layer_classes_by_name() -> None:
    config = TrainConfig(model_kwargs={"attn_layer": partial(SqueezeExcite, reduction=4), "layers": (1, 1, 1)})
    assert config.to_dict()["model_kwargs"] == {"attn_layer": SE4, "layers": [1, 1, 1]}
    assert TrainConfig(model_kwargs={"act_layer": nn.ReLU}).to_dict()["model_kwargs"] == {"act_layer": "relu"}
    with pytest.raises(ConfigError, match="has no name, so a config or checkpoint cannot hold it"):
        TrainConfig(model_kwargs={"act_layer": nn.Hardswish}).to_dict()
    with pytest.raises(ConfigError, match="is not plain data"):
        TrainConfig(model_kwargs={"block": cnnlab.models.resnet.Bottleneck}).to_dict()


@pytest.mark.parametrize("command", ["build", "summary", "compare", "erf"])
def test_the_analyzers_commands_take_any_variant(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--model-kwargs", json.dumps({"attn_layer": SE4})]
    argv = {
        "build": ["build", "cifar_resnet20", *flags],
        "summary": ["summary", "cifar_resnet20", *flags, "--format", "json"],
        "compare": ["compare", "cifar_resnet20", *flags, "--no-latency", "--format", "json"],
        "erf": ["erf", "cifar_resnet20", *flags, "--samples", "1", "--format", "json"],
    }[command]
    assert main(argv) == 0
    out = capsys.readouterr().out
    if command == "build":
        assert f"params  {SE_RESNET20_R4:,}\n" in out
    elif command == "summary":
        assert json.loads(out)["params"] == SE_RESNET20_R4
    elif command == "compare":
        assert json.loads(out)[0]["params"] == SE_RESNET20_R4
    else:  # plain ResNet-20's field is 81 px (test_erf_command); an SE block's squeeze reaches further
        assert json.loads(out)["theoretical_rf"][0] > 81


def test_named_layers_become_classes_in_the_registry_alone() -> None:
    """``resolve_model_kwargs`` (names -> classes) is called by ``registry.build_model`` and nowhere else."""
    callers = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "resolve_model_kwargs":
                callers.add(path.relative_to(SRC).as_posix())
    assert callers == {"registry.py"}
