"""The training comparison: :func:`cnnlab.train.fit` against the shortest correct training loop on the same
images (mnist5k's training split through :mod:`cnnlab.data`), and the main job's time to 98% validation accuracy.

The hand-written loop is the oracle of the trainer's speed, so it stays minimal and independent of the trainer:
no augmentation, logging or evaluation, the images prepared once before the clock starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import tempfile
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.bench.config import BenchConfig
from cnnlab.data import Dataset, load_dataset, make_loader
from cnnlab.registry import build_model
from cnnlab.train import Callback, TrainConfig, fit
from cnnlab.train.config import first_recipe

DATA = "mnist5k"  # embedded: no download, the same images on every machine


def training_images(images: int) -> Dataset:
    """mnist5k with its training split cut to the first ``images`` images, and no validation or test split: what
    both sides of the comparison train on, one epoch, with nothing else timed."""
    data = load_dataset(DATA)
    keep = np.arange(min(images, len(data.train)))
    return dataclasses.replace(data, train=data.train.subset(keep), val=None, test=None)


def as_tensors(data: Dataset, model: nn.Module) -> tuple[Tensor, Tensor]:
    """The whole training split as one (images, labels) batch at the model's input size, normalised as the trainer
    feeds it (unaugmented): the hand-written loop's input."""
    pipeline = data.pipeline(min_size=model.min_input_size, default_size=model.default_image_size)
    loader = make_loader(data, "train", pipeline, batch_size=len(data.train), augment=False)
    return next(loader.batches())


def minimal_training_loop(
    model: nn.Module, images: Tensor, labels: Tensor, *, batch_size: int, epochs: int = 1, lr: float = 0.05
) -> dict[str, float]:
    """The oracle of the trainer's speed: the shortest correct training loop, one epoch of shuffled batches of
    SGD (momentum 0.9, weight decay 5e-4) on the cross-entropy, with nothing else (no logging, no evaluation).

    Returns images per second and the last batch's loss.
    """
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    model.train()
    seen, loss = 0, torch.zeros(())
    start = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(images), generator=gen).split(batch_size):
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(idx)
    return {"images_per_s": seen / (time.perf_counter() - start), "last_loss": loss.item()}


def trainer_images_per_second(model_name: str, data: Dataset, *, batch_size: int) -> float:
    """The images per second that :func:`cnnlab.train.fit` reports for one epoch of ``model_name`` on ``data`` at
    ``batch_size``, in float32, everything else at the main job's defaults (augmentation, channels-last, Nesterov
    SGD)."""
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            model=model_name, data=DATA, epochs=1, batch_size=batch_size, progress=False, out_dir=out,
            precision="fp32",  # as the hand-written loop computes
        )  # fmt: skip
        return fit(config, data=data, log=lambda _s: None).final.images_per_s


class _FirstEpochAt(Callback):
    """Wall time since construction at the end of the first epoch whose validation accuracy reaches ``target``."""

    def __init__(self, target: float) -> None:
        self.target, self.start, self.seconds = target, time.perf_counter(), None

    def on_epoch_end(self, epoch: int, metrics: Any, model: nn.Module) -> None:
        if self.seconds is None and metrics.val_acc is not None and metrics.val_acc >= self.target:
            self.seconds = time.perf_counter() - self.start


PREVIOUS_MAIN_JOB = first_recipe()
"""The main job's recipe until 2026-12-01: the yardstick of the current one's wall time, run in the same
benchmark."""


def main_job(config: TrainConfig | None = None) -> dict[str, Any]:
    """The main job (``cnnlab train`` with no arguments, or ``config``): :func:`train_main_job`'s figures."""
    return train_main_job(config)[0]


def train_main_job(config: TrainConfig | None = None, *, out_dir: str | None = None) -> tuple[dict[str, Any], Any]:
    """The main job (``cnnlab train`` with no arguments, or ``config``) in ``out_dir`` (default: a temporary
    folder): (its figures, :func:`cnnlab.train.fit`'s result). The figures: wall seconds from the call until the
    end of the first epoch at 98% validation accuracy or more (``None`` if it never gets there), total seconds,
    the precision it trained in, the final validation accuracy, and the test accuracy of the final and of the
    best-on-validation weights (the test split evaluated once, at the end)."""
    config = config or TrainConfig()
    with contextlib.ExitStack() as stack:
        out = out_dir or stack.enter_context(tempfile.TemporaryDirectory())
        probe = _FirstEpochAt(0.98)
        result = fit(config.replace(progress=False, out_dir=out), callbacks=[probe], log=lambda _s: None)
    figures = {
        "model": config.model,
        "epochs": config.epochs,
        "seed": config.seed,
        "precision": result.config.precision,
        "seconds_to_98": probe.seconds,
        "total_s": result.wall_s,
        "best_epoch": result.best_epoch,
        "best_val_acc": result.best_val_acc,
        "final_val_acc": result.final.val_acc,
        "final_test_acc": result.test["final"].test_acc,
        "best_test_acc": result.test["best"].test_acc,
    }
    return figures, result


def bench_main_jobs() -> dict[str, Any]:
    """The main job and :data:`PREVIOUS_MAIN_JOB`, one after the other, and the ratio of their wall times (the
    current recipe's over the previous one's: at most 1 means no slower)."""
    current, previous = main_job(), main_job(PREVIOUS_MAIN_JOB)
    return {"current": current, "previous": previous, "wall_ratio": current["total_s"] / previous["total_s"]}


def bench_training_loop(cfg: BenchConfig) -> dict[str, Any]:
    """The hand-written loop's speed and the trainer's on the same images, interleaved; then the main job."""
    data = training_images(cfg.trainer_images)
    result: dict[str, Any] = {"model": cfg.trainer_model, "images": len(data.train), "batch": cfg.trainer_batch}
    loops, trainers = [], []
    for _ in range(cfg.trainer_repeats):  # interleaved, medians: a busy moment hits both alike
        torch.manual_seed(0)
        model = build_model(cfg.trainer_model, num_classes=data.num_classes, in_chans=data.in_chans)
        images, labels = as_tensors(data, model)
        loops.append(minimal_training_loop(model, images, labels, batch_size=cfg.trainer_batch))
        trainers.append(trainer_images_per_second(cfg.trainer_model, data, batch_size=cfg.trainer_batch))
    result["minimal_loop"] = {
        "images_per_s": statistics.median(r["images_per_s"] for r in loops),
        "last_loss": loops[-1]["last_loss"],
    }
    result["trainer_images_per_s"] = statistics.median(trainers)
    result["trainer_ratio"] = result["trainer_images_per_s"] / result["minimal_loop"]["images_per_s"]
    result["main_job"] = bench_main_jobs() if cfg.main_job else None
    return result
