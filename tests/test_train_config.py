"""Training configurations (keys, types, ranges, comments) and learning-rate schedules."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cnnlab.errors import ConfigError
from cnnlab.train.config import ADDED_FIELDS, TrainConfig, config_from_dict, load_yaml, recorded_config
from cnnlab.train.optim import WARMUP_START, lr_factor


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
    with pytest.raises(ConfigError, match=r"epochs must be an integer in \[1, 10000\], got 0"):
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


def test_a_run_recorded_before_rotation_existed_keeps_no_rotation() -> None:
    old = {k: v for k, v in TrainConfig().to_dict().items() if k not in ("rotate", "scale")}  # as recorded then
    assert (recorded_config(old).rotate, recorded_config(old).scale) == (0.0, 0.0)
    new = TrainConfig(scale=0.2).to_dict()  # recorded now: its own values, None included
    assert (recorded_config(new).rotate, recorded_config(new).scale) == (None, 0.2)
    assert set(ADDED_FIELDS) <= set(TrainConfig().to_dict())
