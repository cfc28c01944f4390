"""Experiments: the ablation file format, block names, gradient probes, and both experiments end to end on a
tiny MNIST written in the real IDX format (the real trainer, one epoch)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.experiments.ablation import run_ablation
from cnnlab.experiments.degradation import DEFAULT_RECIPE, run_degradation
from cnnlab.experiments.runner import GradNormProbe, Trial, block_names, run_trial
from cnnlab.experiments.spec import load_spec, spec_from_dict
from cnnlab.layers import SqueezeExcite
from cnnlab.layers.named import resolve_model_kwargs
from cnnlab.registry import build_model, create_model
from cnnlab.train import StepInfo, TrainConfig
from tests.train_fixtures import write_mnist

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mnist(tmp_path_factory.mktemp("mnist"), n_train=32, n_test=16)


def tiny_recipe(mnist_dir: Path) -> dict[str, object]:
    return {"data": "mnist", "data_dir": str(mnist_dir), "epochs": 1, "batch_size": 16, "channels_last": False}


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("shortcuts.yaml", ["shortcut=A", "shortcut=B", "shortcut=C"]),
        ("se.yaml", ["attn_layer=none", "attn_layer=name:se,reduction:4"]),
    ],
)
def test_shipped_experiment_files_parse(name: str, labels: list[str]) -> None:
    spec = load_spec(REPO / "experiments" / name)
    assert spec.seeds == (0, 1) and spec.model == "cifar_resnet20" and spec.recipe.epochs == 10
    assert [v.label for v in spec.variants()] == labels


def test_grid_is_the_cartesian_product() -> None:
    spec = spec_from_dict({"model": "cifar_resnet20", "grid": {"shortcut": ["A", "B", "C"], "plain": [False, True]}})
    labels = [v.label for v in spec.variants()]
    assert labels == [f"shortcut={s} plain={p}" for s in "ABC" for p in (False, True)]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"model": "cifar_resnet20", "grdi": {}}, "Did you mean: grid"),
        ({"model": "cifar_resnet21"}, "cifar_resnet20"),
        ({"model": "cifar_resnet20", "seeds": [0]}, "at least two"),
        ({"model": "cifar_resnet20", "recipe": {"model": "x"}}, "may not set 'model'"),
        ({"model": "cifar_resnet20", "recipe": {"epoch": 2}}, "epochs"),
        ({"model": "cifar_resnet20", "grid": {"attn_layer": ["sse"]}}, "Did you mean: se"),
        ({"model": "cifar_resnet20", "grid": {"shortcutt": ["A"]}}, "variant 'shortcutt=A': .*Did you mean: shortcut"),
        ({"model": "cifar_resnet20", "grid": {"shortcut": "A"}}, "non-empty lists"),
    ],
)
def test_bad_experiment_files_say_what_is_wrong(obj: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        spec_from_dict(obj)


def test_named_layers_become_classes() -> None:
    kwargs = resolve_model_kwargs({"attn_layer": {"name": "se", "reduction": 4}, "shortcut": "B"})
    assert kwargs["shortcut"] == "B" and isinstance(kwargs["attn_layer"], partial)
    with torch.device("meta"):  # structure only
        model = build_model("cifar_resnet20", {"attn_layer": {"name": "se", "reduction": 4}, "shortcut": "B"})
    se = [m for m in model.modules() if isinstance(m, SqueezeExcite)]
    assert len(se) == 9  # one per unit
    assert [m.fc1.out_channels for m in se] == [16 // 4] * 3 + [32 // 4] * 3 + [64 // 4] * 3
    assert resolve_model_kwargs({"attn_layer": None}) == {"attn_layer": None}


def test_block_names_are_the_units_from_input_to_output() -> None:
    with torch.device("meta"):
        names = block_names(create_model("cifar_resnet20"))
    assert names == ["stem"] + [f"S{j}.S{j}U{k}" for j in (1, 2, 3) for k in (1, 2, 3)] + ["head"]


def test_grad_norm_probe_matches_a_hand_computed_norm() -> None:
    model = create_model("cifar_resnet20", num_classes=10)
    x, y = torch.randn(4, 3, 32, 32), torch.arange(4)
    F.cross_entropy(model(x), y).backward()
    probe = GradNormProbe(["stem", "S2.S2U1", "head"], last_step=5)
    probe.on_step(StepInfo(model, 1, 0, 0, 0.0))
    unit = model.get_submodule("S2.S2U1")
    expected = torch.cat([p.grad.flatten() for p in unit.parameters()]).norm().item()
    assert probe.norms["init"]["S2.S2U1"] == pytest.approx(expected, rel=1e-5)
    assert "end" not in probe.norms
    probe.on_step(StepInfo(model, 2, 1, 5, 0.0))
    assert probe.norms["end"] == probe.norms["init"]


def test_degradation_end_to_end(mnist_dir: Path, tmp_path: Path) -> None:
    recipe = DEFAULT_RECIPE.replace(**tiny_recipe(mnist_dir))
    summaries = run_degradation(
        depths=(20,), seeds=(0, 1), recipe=recipe, out_dir=tmp_path, jobs=1, log=lambda _s: None
    )
    assert [s.label for s in summaries] == ["plain-20", "resnet-20"]
    payload = json.loads((tmp_path / "results.json").read_text())
    trials = payload["trials"]
    assert len(trials) == 4
    for s in payload["summary"]:
        errors = [t["train_error"] for t in trials if t["label"] == s["label"]]
        assert s["train_error_mean"] == pytest.approx(sum(errors) / 2)
        assert s["train_error_std"] == pytest.approx(abs(errors[0] - errors[1]) / 2**0.5)
    for t in trials:
        assert all(0 <= t[k] <= 1 for k in ("train_error", "val_error", "test_error"))
        assert list(t["grad_norms"]) == ["init", "end"]
        assert len(t["grad_norms"]["init"]) == 11 and all(v > 0 for v in t["grad_norms"]["init"].values())
    for name in ("summary.md", "training_curves.png", "grad_norms.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_ablation_end_to_end_reports_measured_params(mnist_dir: Path, tmp_path: Path) -> None:
    spec = spec_from_dict(
        {
            "name": "t",
            "model": "cifar_resnet20",
            "seeds": [0, 1],
            "recipe": tiny_recipe(mnist_dir),
            "grid": {"shortcut": ["A", "B"]},
        }
    )
    a, b = run_ablation(spec, out_dir=tmp_path, jobs=1, log=lambda _s: None)
    # Option B adds a 1x1 projection + BN where the shape changes: 16->32 and 32->64 channels.
    assert b.extra["params"] - a.extra["params"] == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    # 28x28 digits, one channel: the stem, 6 convs 16->16 at 28x28, 32 channels at 14x14, 64 at 7x7, the fc
    macs_a = 28 * 28 * 16 * 9 + 6 * 28 * 28 * 16 * 9 * 16 + 14 * 14 * 32 * 9 * (16 + 5 * 32)
    macs_a += 7 * 7 * 64 * 9 * (32 + 5 * 64) + 64 * 10
    assert a.extra["macs"] == macs_a == 30_821_248  # the README's 30.82 MMACs
    assert b.extra["macs"] - a.extra["macs"] == 14 * 14 * 32 * 16 + 7 * 7 * 64 * 32  # the two 1x1 projections
    assert a.extra["receptive_field"] == b.extra["receptive_field"] == "81"  # the README's 81
    assert "shortcut=B" in (tmp_path / "summary.md").read_text()


def test_cli_rejects_a_depth_without_a_plain_twin(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["experiment", "degradation", "--depths", "1202", "--out", str(tmp_path)]) == 2
    assert "plain twin" in capsys.readouterr().err


def test_a_trial_with_a_named_layer_trains_that_layer(mnist_dir: Path, tmp_path: Path) -> None:
    trial = Trial("se", "cifar_resnet20", {"attn_layer": {"name": "se", "reduction": 4}}, seed=0)
    result = run_trial(trial, TrainConfig(**tiny_recipe(mnist_dir)), str(tmp_path))
    se_params = sum(2 * c * (c // 4) + c + c // 4 for c in (16, 32, 64) for _ in range(3))  # 9 SE blocks
    plain = sum(p.numel() for p in create_model("cifar_resnet20", in_chans=1).parameters())
    assert result.params == plain + se_params
