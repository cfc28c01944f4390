"""The recipes for real data (``recipes/*.yaml``, ``cnnlab train --recipe``): each is the source's recipe in the
trainer's terms (He et al.'s figures from REFERENCE.md, MATLAB's documented schedule), carries the source's figure
and its expected wall times, and runs for a few steps on CIFAR-10 files written in the real format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.train import fit
from cnnlab.train.config import config_from_dict
from cnnlab.train.optim import lr_factor
from cnnlab.train.recipes import RECIPES, load_recipe, recipe_names
from tests.helpers import count_params
from tests.train_fixtures import write_cifar10

HE = ("he2016-resnet20-cifar10", "he2016-resnet56-cifar10", "he2016-resnet110-cifar10")
ALL = (*HE, "matlab-resnet20-cifar10", "resnet34-cifar10")
CIFAR_TRAIN, BATCH = 45_000, 128  # He et al.: 45k/5k train/val split, minibatch 128
STEPS_PER_EPOCH = math.ceil(CIFAR_TRAIN / BATCH)  # 352: the last batch of an epoch is a short one


def test_the_recipes_are_these_and_say_what_they_reproduce() -> None:
    assert recipe_names() == sorted(ALL)
    for name in ALL:
        text = (RECIPES / f"{name}.yaml").read_text()
        comments = "\n".join(line for line in text.splitlines() if line.startswith("#"))
        assert "not measured" in comments and "one GPU:" in comments and "this CPU (2 cores):" in comments, name
        assert "CPU_" not in comments, name  # the pilot's estimate is filled in
        config = config_from_dict(yaml.safe_load(text))
        assert (config.data, config.label_smoothing, config.val_fraction) == ("cifar10", 0.0, 0.1), name


@pytest.mark.parametrize(("name", "error"), list(zip(HE, ("8.75%", "6.97%", "6.43%"), strict=True)))
def test_he_recipes_are_the_papers(name: str, error: str) -> None:
    """REFERENCE.md: SGD momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k and 48k
    iterations, stop at 64k, pad-crop-flip; ResNet-110 warms up at 0.01 for about 400 iterations."""
    c = config_from_dict(load_recipe(name))
    assert error in (RECIPES / f"{name}.yaml").read_text().splitlines()[0]
    assert (c.optimizer, c.momentum, c.nesterov, c.weight_decay) == ("sgd", 0.9, False, 1e-4)
    assert (c.batch_size, c.lr) == (128, 0.1)
    assert (c.schedule, c.augment) == ("step", True)
    assert c.epochs * STEPS_PER_EPOCH == pytest.approx(64_000, rel=0.002)
    assert [m * STEPS_PER_EPOCH for m in c.milestones] == pytest.approx([32_000, 48_000], rel=0.002)
    if name.endswith("110-cifar10"):
        assert c.warmup_lr == 0.01 and c.warmup_epochs * STEPS_PER_EPOCH == pytest.approx(400, rel=0.01)
    else:
        assert c.warmup_epochs == 0


def test_the_schedule_of_resnet110_step_by_step() -> None:
    """The learning rate He et al. describe, at the steps where it changes: 0.01 for ~400 iterations, 0.1 until
    32k, 0.01 until 48k, 0.001 to the end."""
    c = config_from_dict(load_recipe("he2016-resnet110-cifar10"))
    total, warmup = c.epochs * STEPS_PER_EPOCH, round(c.warmup_epochs * STEPS_PER_EPOCH)
    marks = [round(m * STEPS_PER_EPOCH) for m in c.milestones]

    def lr(step: int) -> float:
        return c.lr * lr_factor(step, total=total, warmup=warmup, schedule=c.schedule, milestones=marks,
                                warmup_factor=c.warmup_lr / c.lr)  # fmt: skip

    assert [lr(s) for s in (0, 400, 401, 32_031)] == pytest.approx([0.01, 0.01, 0.1, 0.1])
    assert [lr(s) for s in (32_032, 48_047, 48_048, total - 1)] == pytest.approx([0.01, 0.01, 0.001, 0.001])


def test_matlab_recipe_is_the_examples() -> None:
    """residualCIFARlgraph(16, 9, "standard"): 9 units in all, 20 layers, projection shortcuts where the shape
    changes (REFERENCE.md: option-B ResNet-20, 272,474 params); sgdm 0.1, 80 epochs, one drop by 10 at 60."""
    c = config_from_dict(load_recipe("matlab-resnet20-cifar10"))
    model = cnnlab.build_model(c.model, c.model_kwargs, num_classes=10)
    units = [b for s in ("S1", "S2", "S3") for b in model.get_submodule(s)]
    assert (len(units), 2 * len(units) + 2, count_params(model)) == (9, 20, 272_474)
    assert (c.lr, c.epochs, c.milestones, c.batch_size) == (0.1, 80, (60.0,), 128)
    assert (c.momentum, c.nesterov, c.weight_decay) == (0.9, False, 1e-4)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten CIFAR-10 images per batch file (the pickles torchvision reads): 40 train, 10 val, 10 test."""
    return write_cifar10(tmp_path_factory.mktemp("cifar"), per_batch=10)


def short(name: str, cifar: Path, out: Path) -> dict[str, object]:
    """The recipe for one epoch of two steps (batch 20), its milestones moved to the second step."""
    recipe = load_recipe(name)
    changes = {"data_dir": str(cifar), "epochs": 1, "batch_size": 20, "progress": False, "out_dir": str(out)}
    return recipe | changes | ({"milestones": [0.5]} if "milestones" in recipe else {})


@pytest.mark.parametrize("name", [n for n in ALL if n != "he2016-resnet20-cifar10"])
def test_each_recipe_runs_a_few_steps_on_cifar_files(name: str, cifar: Path, tmp_path: Path) -> None:
    result = fit(config_from_dict(short(name, cifar, tmp_path) | {"run_name": "r"}), log=lambda _: None)
    assert [m.epoch for m in result.history] == [1] and result.test["best"].test_acc is not None
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["splits"] == {"train": 40, "val": 10, "test": 10}
    lr = result.history[-1].lr  # after the last step
    if name.startswith("resnet34"):  # cosine: down to 0 at the end
        assert lr == pytest.approx(0.0, abs=1e-12)
    else:  # divided by 10 at the milestone
        assert lr == pytest.approx(0.01)


def test_train_recipe_flag_end_to_end(cifar: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`cnnlab train --recipe NAME` with flags that override it; the run records the recipe's other values."""
    flags = ["--data-dir", str(cifar), "--epochs", "1", "--batch-size", "20", "--milestones", "0.5", "--no-progress"]
    assert main(["train", "--recipe", "he2016-resnet20-cifar10", *flags, "--out-dir", str(tmp_path),
                 "--run-name", "r"]) == 0  # fmt: skip
    recorded = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert (recorded["model"], recorded["weight_decay"], recorded["nesterov"]) == ("cifar_resnet20", 1e-4, False)
    assert (recorded["epochs"], recorded["batch_size"], recorded["milestones"]) == (1, 20, [0.5])
    assert main(["train", "--recipe", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ALL) and "8.75% test error" in listing


def test_config_and_flags_override_the_recipe_and_mistakes_are_explained(tmp_path: Path) -> None:
    from cnnlab.cli import build_parser
    from cnnlab.cli.train_cmd import resolve_config

    config = tmp_path / "mine.yaml"
    config.write_text("lr: 0.05\nepochs: 10\nmilestones: [5]\n")
    args = build_parser().parse_args(["train", "--recipe", "he2016-resnet56-cifar10", "--config", str(config),
                                      "--lr", "0.02"])  # fmt: skip
    c = resolve_config(args)
    assert (c.model, c.weight_decay, c.epochs, c.milestones, c.lr) == ("cifar_resnet56", 1e-4, 10, (5.0,), 0.02)
    with pytest.raises(ConfigError, match=r"unknown recipe 'he2016-resnet50'.*he2016-resnet56-cifar10"):
        load_recipe("he2016-resnet50")
    with pytest.raises(ConfigError, match=r"milestones must be increasing epochs in \(0, epochs=10\)"):
        config_from_dict(load_recipe("he2016-resnet20-cifar10") | {"epochs": 10})
    with pytest.raises(ConfigError, match="milestones are the step schedule's"):
        config_from_dict({"schedule": "cosine", "milestones": [5]})
    with pytest.raises(ConfigError, match="warmup_lr must be a finite number > 0 with warmup_epochs > 0"):
        config_from_dict({"warmup_lr": 0.01, "warmup_epochs": 0})
