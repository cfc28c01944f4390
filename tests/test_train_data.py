"""Datasets read through the real code path from files in their real formats; batch augmentation; configs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.errors import ConfigError, DataError
from cnnlab.train.config import TrainConfig, config_from_dict, load_yaml
from cnnlab.train.data import load_dataset, make_loader, random_crop_flip
from cnnlab.train.optim import WARMUP_START, lr_factor
from tests.train_fixtures import class_images, write_cifar10, write_image_folder, write_mnist


def test_mnist5k_is_a_fixed_stratified_4000_1000_split() -> None:
    data = load_dataset("mnist5k")
    assert (len(data.train), len(data.test), data.in_chans, data.image_size) == (4000, 1000, 1, 28)
    assert torch.bincount(data.train.y).tolist() == [400] * 10
    assert torch.bincount(data.test.y).tolist() == [100] * 10
    assert data.train.x.shape == (4000, 1, 28, 28) and data.train.x.dtype == torch.uint8
    again = load_dataset("mnist5k")  # the split does not depend on anything but the fixed split seed
    assert torch.equal(again.test.x, data.test.x)
    # no image is in both splits
    train_rows = {bytes(r) for r in data.train.x.flatten(1).numpy()}
    assert not any(bytes(r) in train_rows for r in data.test.x.flatten(1).numpy()[:200])


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_files_load_through_torchvision(tmp_path: Path, gz: bool) -> None:
    write_mnist(tmp_path, gz=gz)
    data = load_dataset("mnist", data_dir=str(tmp_path))
    x, y = class_images(64, 28, 1, 10, seed=0)
    assert torch.equal(data.train.x[:, 0], torch.from_numpy(x[..., 0]))
    assert torch.equal(data.train.y, torch.from_numpy(y).long())
    assert (len(data.test), data.num_classes, data.in_chans) == (32, 10, 1)


def test_cifar_python_batches_load(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    data = load_dataset("cifar10", data_dir=str(tmp_path))
    assert (len(data.train), len(data.test), data.in_chans, data.image_size) == (40, 8, 3, 32)
    x, _ = class_images(8, 32, 3, 10, seed=0)  # the first training batch, back in N x C x H x W
    assert torch.equal(data.train.x[:8], torch.from_numpy(x).permute(0, 3, 1, 2))
    assert data.classes[0] == "airplane"


def test_missing_files_say_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cifar-10-batches-py.*--download"):
        load_dataset("cifar10", data_dir=str(tmp_path))
    with pytest.raises(DataError, match=r"MNIST/raw"):
        load_dataset("mnist", data_dir=str(tmp_path))
    with pytest.raises(DataError, match="Did you mean: cifar10"):
        load_dataset("cifar01")


def test_image_folder_split_and_batches(tmp_path: Path) -> None:
    write_image_folder(tmp_path, per_class=5)
    data = load_dataset(f"imagefolder:{tmp_path}", image_size=8)
    assert data.classes == ["ant", "bee", "cat"] and (len(data.train), len(data.test)) == (12, 3)
    x, y = next(make_loader(data, train=False, batch_size=4).batches())
    assert x.shape == (3, 3, 8, 8) and sorted(y.tolist()) == [0, 1, 2]


def test_random_crop_equals_a_slice_of_the_padded_image() -> None:
    x = torch.randint(0, 255, (6, 2, 5, 7), dtype=torch.uint8)
    out = random_crop_flip(x, pad=2, flip=False, gen=torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):  # each output is some 5x7 window of its padded input
        windows = [padded[i, :, a : a + 5, b : b + 7] for a in range(5) for b in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    flipped = random_crop_flip(x, pad=0, flip=True, gen=torch.Generator().manual_seed(0))
    assert all(torch.equal(f, o) or torch.equal(f, o.flip(-1)) for f, o in zip(flipped, x, strict=True))


def test_batches_depend_only_on_seed_epoch_and_step(tmp_path: Path) -> None:
    data = load_dataset("mnist", data_dir=str(write_mnist(tmp_path)))
    loader = make_loader(data, train=True, batch_size=16, seed=5)
    full = list(loader.batches(epoch=2))
    resumed = list(loader.batches(epoch=2, start_step=2))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full[2:], resumed, strict=True))
    assert not torch.equal(full[0][0], next(loader.batches(epoch=3))[0])
    # two ranks see disjoint halves of the epoch
    shards = [
        torch.cat([y for _, y in make_loader(data, train=False, batch_size=8, rank=r, world_size=2).batches()])
        for r in (0, 1)
    ]
    assert len(shards[0]) + len(shards[1]) == 32


def test_schedules_follow_their_formulas() -> None:
    total, warmup = 100, 10
    assert lr_factor(0, total=total, warmup=warmup, schedule="cosine") == pytest.approx(WARMUP_START)
    assert lr_factor(10, total=total, warmup=warmup, schedule="cosine") == pytest.approx(1.0)
    assert lr_factor(55, total=total, warmup=warmup, schedule="cosine") == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 0.5))
    )
    assert lr_factor(55, total=total, warmup=warmup, schedule="onecycle") == pytest.approx(0.5)
    assert [lr_factor(s, total=total, warmup=0, schedule="step") for s in (49, 50, 74, 75)] == [1, 0.1, 0.1, 0.01]


def test_config_keys_are_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 3\nbatch-size: 32\nlr: 1\nmodel_kwargs: {layers: [1, 1, 1]}\n")
    config = config_from_dict(load_yaml(cfg))
    assert (config.epochs, config.batch_size, config.lr, config.model_kwargs["layers"]) == (3, 32, 1.0, [1, 1, 1])
    with pytest.raises(ConfigError, match=r"unknown config key 'epoch'.*Did you mean: epochs"):
        config_from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="must be >= 1"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="must be a int"):
        config_from_dict({"epochs": "ten"})
    cfg.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(cfg)


def test_every_config_default_has_a_comment() -> None:
    import inspect

    import cnnlab.train.config as module

    source = inspect.getsource(module.TrainConfig)
    fields = [line for line in source.splitlines() if line.startswith("    ") and ": " in line and " = " in line]
    assert len(fields) == len(module.FIELDS)
    assert all("#" in line for line in fields), [line for line in fields if "#" not in line]
    assert np.isfinite(TrainConfig().lr)
