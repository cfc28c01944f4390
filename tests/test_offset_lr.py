"""Deformable convs' offsets at their own learning rate (Dai et al. 2017, Sec. 2.3: the offset layers learn at a
multiple of the others' rate), and the probe that measures how far the offsets moved the kernel points."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.experiments.experiment import run_experiment
from cnnlab.experiments.probes import offset_lengths
from cnnlab.experiments.spec import spec_from_dict
from cnnlab.layers import DeformConv2d
from cnnlab.train.config import TrainConfig
from cnnlab.train.optim import build_optimizer, build_scheduler, offset_parameters
from tests.train_fixtures import write_mnist


def net(modulated: bool = False) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), DeformConv2d(4, 4, 3, modulated=modulated))


def group_of(optimizer: torch.optim.Optimizer, p: nn.Parameter) -> dict:
    return next(g for g in optimizer.param_groups if any(q is p for q in g["params"]))


@pytest.mark.parametrize("modulated", [False, True])
def test_the_offset_and_mask_convs_learn_at_the_multiple_of_the_rate(modulated: bool) -> None:
    model = net(modulated)
    deform = model[2]
    slow = [deform.offset.weight, deform.offset.bias] + ([deform.mask.weight, deform.mask.bias] if modulated else [])
    assert {id(p) for p in offset_parameters(model)} == {id(p) for p in slow}
    optimizer = build_optimizer(model, TrainConfig(lr=0.2, offset_lr_mult=0.1, schedule="constant", warmup_epochs=0))
    for p in slow:
        assert group_of(optimizer, p)["lr"] == pytest.approx(0.02)
    for p in (model[0].weight, model[0].bias, deform.weight, deform.bias):
        assert group_of(optimizer, p)["lr"] == pytest.approx(0.2)
    # weight decay as everywhere else: on the offset conv's weight, not on its bias
    assert group_of(optimizer, deform.offset.weight)["weight_decay"] == 5e-4
    assert group_of(optimizer, deform.offset.bias)["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_the_schedule_scales_the_offsets_rate_with_the_others() -> None:
    model = net()
    config = TrainConfig(lr=0.4, offset_lr_mult=0.1, schedule="onecycle", warmup_epochs=1, epochs=2)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch=5)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
        main, offset = group_of(optimizer, model[0].weight)["lr"], group_of(optimizer, model[2].offset.weight)["lr"]
        assert offset == pytest.approx(0.1 * main) and main > 0


def test_an_sgd_step_moves_the_offsets_by_the_multiple_of_a_plain_step() -> None:
    """The same gradient, the offsets' update a tenth of what it is at multiplier 1 (no momentum, no decay)."""
    torch.manual_seed(0)
    x = torch.randn(2, 1, 6, 6)
    moved = {}
    for mult in (1.0, 0.1):
        torch.manual_seed(1)
        model = net()
        nn.init.normal_(model[2].offset.weight, std=0.1)  # so that the offset conv gets a gradient through them
        before = model[2].offset.weight.detach().clone()
        config = TrainConfig(lr=0.5, offset_lr_mult=mult, momentum=0.0, weight_decay=0.0)
        optimizer = build_optimizer(model, config)
        model(x).square().mean().backward()
        optimizer.step()
        moved[mult] = model[2].offset.weight.detach() - before
    assert moved[1.0].abs().max() > 0
    torch.testing.assert_close(moved[0.1], 0.1 * moved[1.0])


def test_without_deformable_layers_or_at_one_the_groups_are_the_two_usual_ones() -> None:
    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    assert len(build_optimizer(plain, TrainConfig(offset_lr_mult=0.1)).param_groups) == 2
    assert len(build_optimizer(net(), TrainConfig()).param_groups) == 2


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.1"])
def test_a_bad_multiplier_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="offset_lr_mult"):
        TrainConfig(offset_lr_mult=bad)  # type: ignore[arg-type]


def test_the_probe_measures_the_offsets_length_in_pixels() -> None:
    """Offset bias (dy, dx) = (3, 4) at every kernel point and no weight: every offset is 5 px long."""
    model = net()
    deform = model[2]
    with torch.no_grad():
        deform.offset.bias.copy_(torch.tensor([3.0, 4.0]).repeat(9))
    seen = []
    lengths = offset_lengths(model, lambda m: seen.append(m(torch.randn(3, 1, 5, 5))))
    assert seen and lengths == {"2": pytest.approx(5.0)}
    assert not deform.offset._forward_hooks  # the hooks are removed
    calls = []
    assert offset_lengths(nn.Sequential(nn.Conv2d(1, 1, 3)), calls.append) == {} and calls == []  # nothing to run
    assert offset_lengths(net(), lambda m: m(torch.randn(1, 1, 5, 5))) == {"2": 0.0}  # zero-initialised


def test_an_experiment_records_each_deformable_runs_offsets(tmp_path: Path) -> None:
    """End to end on a tiny MNIST: the deformable variant's runs carry ``offset_px`` (the mean of the per-layer
    ``offsets``) and the summary's table shows it; the plain variant's runs have none."""
    data = write_mnist(tmp_path / "mnist", n_train=64, n_test=32)
    tiny = {"layers": [1, 1, 1], "widths": [4, 8, 8]}
    spec = spec_from_dict({
        "name": "t", "data": "mnist", "seeds": [0, 1],
        "recipe": {"data_dir": str(data), "epochs": 1, "batch_size": 16, "channels_last": False},
        "variants": [
            {"label": "plain", "model": "cifar_resnet20", "model_kwargs": tiny},
            {"label": "deform", "model": "cifar_resnet20", "recipe": {"offset_lr_mult": 0.1},
             "model_kwargs": tiny | {"stage_conv_layers": ["conv", "conv", "deformable"]}},
        ],
        "expect": [{"better": "deform", "worse": "plain", "metric": "test_error"}],
    })  # fmt: skip
    result = run_experiment(spec, tmp_path / "out", jobs=1, log=lambda _s: None)
    for r in result.records:
        if r.label == "plain":
            assert r.offsets is None and "offset_px" not in r.metrics
        else:
            assert list(r.offsets) == ["S3.S3U1.conv1.conv", "S3.S3U1.conv2.conv"]
            assert r.metrics["offset_px"] == pytest.approx(sum(r.offsets.values()) / 2) and r.metrics["offset_px"] > 0
    assert "offset px" in (tmp_path / "out" / "summary.md").read_text()
