"""Tiny datasets written in the real on-disk formats, a tiny model, configs and callbacks for the trainer's tests."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cnnlab.data import IGNORE_INDEX
from cnnlab.models.base import CnnlabModel, FeatureInfo, LogitsWithAux
from cnnlab.train import Callback, StepInfo, TrainConfig

# A CIFAR ResNet with one unit per stage and 4-8-8 channels: ~1.5k params, milliseconds per step.
TINY = {"model": "cifar_resnet20", "model_kwargs": {"layers": [1, 1, 1], "widths": [4, 8, 8]}}
TINY_FLAGS = ["--model", TINY["model"], "--model-kwargs", json.dumps(TINY["model_kwargs"])]
# The same with dropout before the classifier: a resumed run is exact only if the RNG state is too.
TINY_DROPOUT = {"model": TINY["model"], "model_kwargs": {**TINY["model_kwargs"], "drop_rate": 0.5}}
# Environment of a subprocess that imports this checkout and these tests, one thread per process.
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(sys.path)}


def _idx(array: np.ndarray) -> bytes:
    """IDX format (LeCun's MNIST files): magic 0x0000 08 <ndim>, big-endian dims, then uint8 data."""
    return struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def class_images(n: int, size: int, channels: int, num_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images (N x H x W x C) whose class is a bright square's position: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    x = rng.integers(0, 40, size=(n, size, size, channels), dtype=np.uint8)
    band = max(1, size // num_classes)
    for i, c in enumerate(y):
        x[i, :, c * band : (c + 1) * band, :] = 255
    return x, y.astype(np.uint8)


def write_mnist(root: Path, *, n_train: int = 64, n_test: int = 32, gz: bool = True, folder: str = "MNIST") -> Path:
    """``root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` with 28x28 images of 10 classes."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        x, y = class_images(n, 28, 1, 10, seed)
        for kind, arr in (("images-idx3", x[..., 0]), ("labels-idx1", y)):
            name = raw / f"{prefix}-{kind}-ubyte"
            data = _idx(arr)
            if gz:
                name.with_suffix(".gz").write_bytes(gzip.compress(data))
            else:
                name.write_bytes(data)
    return root


def write_cifar10(root: Path, *, per_batch: int = 8) -> Path:
    """``root/cifar-10-batches-py/`` with five training batches, a test batch and ``batches.meta`` as pickled
    dicts (``data``: N x 3072 uint8 rows in channel-major order, ``labels``)."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate([*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]):
        x, y = class_images(per_batch, 32, 3, 10, seed=k)
        rows = x.transpose(0, 3, 1, 2).reshape(per_batch, -1)
        (base / name).write_bytes(pickle.dumps({"data": rows, "labels": y.tolist(), "batch_label": name}))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return root


def write_image_folder(
    root: Path, *, classes: tuple[str, ...] = ("ant", "bee", "cat"), per_class: int = 5, size: int = 12
) -> Path:
    """``root/<class>/<i>.png`` RGB images."""
    from PIL import Image

    x, y = class_images(per_class * len(classes), size, 3, len(classes))
    for i, (img, c) in enumerate(zip(x, y, strict=True)):
        folder = root / classes[c]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.png")
    return root


def write_squares(root: Path, n: int, *, size: int = 16) -> Path:
    """``root/images/*.png`` (RGB) and ``root/masks/*.png``: a bright square of class 1 or 2 at a random place on
    a dark noisy image, its mask that square (one ignored pixel in a corner, which is dark)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for k in range(n):
        image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), dtype=np.uint8)
        top, left = rng.integers(1, size - 6, 2)
        image[top : top + 5, left : left + 3] = (255, 200, 150) if k % 2 else (150, 255, 200)
        mask[top : top + 5, left : left + 3], mask[0, 0] = 1 + k % 2, IGNORE_INDEX
        Image.fromarray(image).save(root / "images" / f"{k}.png")
        Image.fromarray(mask).save(root / "masks" / f"{k}.png")
    return root


class TinyAuxNet(CnnlabModel):
    """A two-stage net with an auxiliary classifier after the first stage (GoogLeNet's layout in miniature)."""

    default_image_size = 28
    aux_loss_weight = 0.3

    def __init__(self, *, num_classes: int = 10, in_chans: int = 1) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2), nn.ReLU())
        self.aux = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))
        self.head_modules = ("head", "aux")
        self.feature_info = [FeatureInfo("stem", 4, 2), FeatureInfo("body", 8, 4)]
        self.num_features = 8

    def forward(self, x: Tensor) -> Any:
        s = self.stem(x)
        logits = self.head(self.body(s))
        return LogitsWithAux(logits, (self.aux(s),)) if self.training else logits


def state_of(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def tiny_config(data_dir: Path, out: Path, **kw: Any) -> TrainConfig:
    """The tiny ResNet on :func:`write_mnist`'s 64 digits: 2 epochs of 4 steps (54 train, 10 val, 32 test)."""
    base = dict(TINY, data="mnist", data_dir=str(data_dir), epochs=2, batch_size=16, out_dir=str(out), progress=False)
    return TrainConfig(**(base | kw))


def folder_config(folder: Path, out: Path, **kw: Any) -> TrainConfig:
    """The tiny ResNet with dropout on an image folder of 8x8 images, read by 2 loader processes."""
    base = dict(TINY_DROPOUT, data=f"imagefolder:{folder}", image_size=8, epochs=2, batch_size=4, workers=2,
                out_dir=str(out), progress=False, device="cpu")  # fmt: skip
    return TrainConfig(**(base | kw))


class StopAt(Callback):
    """Request a stop after ``global_step`` (0-based), as Ctrl-C does; only on ``rank`` when one is given."""

    def __init__(self, global_step: int, *, rank: int | None = None) -> None:
        self.global_step, self.rank = global_step, rank

    def on_step(self, info: StepInfo) -> None:
        if info.global_step == self.global_step and self.rank in (None, int(os.environ.get("RANK", "0"))):
            info.request_stop()


def metrics(result: Any) -> list[tuple]:
    """Everything of a run's history but its timings."""
    return [(m.epoch, m.train_loss, m.train_acc, m.val_loss, m.val_acc, m.lr) for m in result.history]


def assert_same_weights(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for k, v in a.items():
        assert torch.equal(v, b[k]), k
