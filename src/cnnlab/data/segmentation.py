"""Segmentation data sets: images with a label per pixel, in fixed train / validation / test splits.

* ``mnist5k-seg``: 64x64 canvases built from the embedded MNIST-5k digits in about two seconds, nothing
  downloaded. There is one canvas per digit of mnist5k's splits (3,600 train / 400 validation / 1,000 test:
  the splits of :func:`cnnlab.data.load_dataset`, so a canvas holds digits of its own split only, and no test
  digit's ink is on a training or validation canvas). Canvas i shows digit i *large* (its larger side 40-48 px)
  and up to three other digits of the same split *small* (10-14 px), at random places where their boxes
  neither overlap nor touch. Each digit is cropped to its ink and resized (bilinear, antialiased) keeping its
  aspect ratio. ``test_copies=c`` builds ``c`` canvases per test digit (other places, sizes and small
  companions; copy 0 is the usual one). Labels: 0 is the background, ``1 + d`` a stroke pixel of digit d (the
  pasted intensity is at least 128 of 255), so 11 classes; the faint rim below that threshold is background.
  ``sizes`` marks each pixel inside a digit's box with that digit's size bucket (1 small, 2 large; 0 outside
  every box), so that IoU is reported for small and large objects apart (:mod:`cnnlab.data.metrics`). Every random
  number comes from ``numpy.random.default_rng((SEG_SEED, k))`` for split k (0 train, 1 validation, 2 test), in
  a fixed order.
* ``segfolder:PATH``: ``PATH/images/NAME.{png,jpg,...}`` with ``PATH/masks/NAME.png``, a single-channel PNG
  (mode L or P, as Pascal VOC's) whose values are class indices and 255 "ignore"; ``PATH/train``, ``PATH/val``
  and ``PATH/test`` (each with ``images/`` and ``masks/``) are the splits when present, else 20% of the pairs
  are the test split (``default_rng(0)``) and 10% of the rest the validation split (``default_rng(1)``), as for
  an image folder. ``PATH/classes.txt`` names the classes, one a line; without it they are ``0..K-1`` for the
  largest label K-1 found in the masks. Every mask is read once when the data set is loaded, so a mask that holds
  a class index beyond the named classes is refused then (a DataError that names the file), and again whenever a
  mask is read for a batch. Images are read as RGB through PIL.

These are not classification data sets: :func:`cnnlab.data.load_dataset` refuses their names and points here;
:func:`load_any` reads either kind by name (what ``cnnlab train``, ``eval`` and the experiments use). Training
augmentation moves each mask with its image (:func:`cnnlab.data.transforms.joint_crop_flip`): ``mnist5k-seg`` a
random shift of up to 4 pixels, the border gained labelled "ignore" (no flips: a mirrored digit is not a digit);
``segfolder`` a horizontal flip, with every image and mask resized to the model's input size (bilinear and
nearest; a departure from Pascal VOC's protocol, which scores masks at their own size).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cnnlab.data import stats as S
from cnnlab.data.datasets import (
    CLASSES,
    SEGMENTATION_DATASETS,
    Dataset,
    SplitSet,
    TensorSplit,
    is_segmentation,
    load_dataset,
)
from cnnlab.data.images import open_image
from cnnlab.data.metrics import IGNORE_INDEX
from cnnlab.data.splits import DEFAULT_VAL_FRACTION, TEST_SPLIT_SEED, VAL_SPLIT_SEED, stratified_split
from cnnlab.data.transforms import AugmentSpec, Kind
from cnnlab.errors import DataError, suggest

SEG_SEED = 2016  # Yu & Koltun's year: any fixed seed would do, this one is documented
CANVAS = 64  # pixels per side
LARGE, SMALL = (40, 48), (10, 14)  # the larger side of a digit, in pixels, drawn uniformly (inclusive)
SMALL_DIGITS, PLACEMENT_TRIES = 3, 30  # small digits per canvas at most; random places tried for each
INK = 128  # a pasted pixel this bright (of 255) is the digit's stroke, and labelled with it
SIZE_BUCKETS = ("small", "large")  # size map values 1 and 2 (0: outside every digit's box)
CANVAS_SHIFT = AugmentSpec(pad=4)  # a shift of up to 4 px (a 28 px digit's 2, at 64 px); never flipped
FOLDER_FLIP = AugmentSpec(flip=True)  # segfolder: a horizontal flip of image and mask
DIGIT_CLASSES = ["background", *CLASSES]  # label 0, then 1 + digit

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MASK_MODES = ("L", "P", "I", "I;16")  # one value per pixel: a class index


@dataclass
class MaskSplit:
    """Images with a label per pixel in memory: ``x`` N x C x H x W uint8, ``y`` N x H x W uint8 (class indices,
    :data:`~cnnlab.data.metrics.IGNORE_INDEX` where unlabelled), ``sizes`` N x H x W uint8 size buckets (0: no
    object; None when the data set has none)."""

    x: Tensor
    y: Tensor
    sizes: Tensor | None = None

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> MaskSplit:
        i = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        return MaskSplit(self.x[i], self.y[i], None if self.sizes is None else self.sizes[i])


@dataclass
class MaskFolderSplit:
    """Image and mask files: ``pairs[k]`` is (image path, mask path); each mask's class indices are below
    ``num_classes`` or :data:`~cnnlab.data.metrics.IGNORE_INDEX` (None: not checked)."""

    pairs: list[tuple[Path, Path]]
    num_classes: int | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def subset(self, idx: np.ndarray) -> MaskFolderSplit:
        return MaskFolderSplit([self.pairs[i] for i in idx], self.num_classes)

    def item(self, k: int) -> tuple[Any, Tensor]:
        """The k-th image (PIL, RGB) and its mask (H x W uint8 tensor of class indices)."""
        image_path, mask_path = self.pairs[k]
        image, mask = open_image(image_path, mode="RGB"), read_mask(mask_path)
        if self.num_classes is not None:
            check_class_ids(mask, self.num_classes, mask_path)
        if (image.height, image.width) != tuple(mask.shape):
            raise DataError(
                f"{str(image_path)!r} is {image.width}x{image.height} pixels but its mask {str(mask_path)!r} is "
                f"{mask.shape[1]}x{mask.shape[0]}; they must be the same size"
            )
        return image, mask


SegSplit = MaskSplit | MaskFolderSplit


@dataclass
class SegmentationDataset(SplitSet):
    """Train, validation and test splits of images with a label per pixel, and what a model needs to know. Its
    :meth:`pipeline` says how the images become a model's input; a loader must move the masks and size maps with
    them (nearest-neighbour where images are resized)."""

    name: str
    classes: list[str]
    in_chans: int
    image_size: int | None  # height and width of in-memory images; None for image files
    kind: Kind
    train: SegSplit
    val: SegSplit | None  # None when val_fraction is 0
    test: SegSplit | None  # None for a folder without a test part
    stats: S.ChannelStats
    ignore_index: int = IGNORE_INDEX
    size_buckets: tuple[str, ...] = ()  # names of the size map's values 1, 2, ... (empty: no size map)
    augment: AugmentSpec = AugmentSpec()  # noqa: RUF009 (frozen: sharing it is safe); the training augmentation, applied to images and masks alike


# ---------------------------------------------------------------------------------------------- mnist5k-seg


def ink_crop(digit: np.ndarray) -> np.ndarray:
    """The digit's ink box: the rows and columns of ``digit`` (H x W) that hold a non-zero pixel."""
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    return digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def resized(crop: np.ndarray, side: int) -> np.ndarray:
    """``crop`` resized so that its larger side is ``side`` pixels, its aspect ratio kept (bilinear,
    antialiased: a 20-pixel digit shrunk to 10 keeps its strokes)."""
    h, w = crop.shape
    scale = side / max(h, w)
    out = (max(1, round(h * scale)), max(1, round(w * scale)))
    t = torch.from_numpy(crop.astype(np.float32))[None, None]
    values = F.interpolate(t, size=out, mode="bilinear", antialias=True)[0, 0].numpy()
    return np.rint(values).clip(0, 255).astype(np.uint8)


def _free(box: tuple[int, int, int, int], boxes: list[tuple[int, int, int, int]]) -> bool:
    """Whether ``box`` (top, left, height, width) keeps a pixel of background from every box of ``boxes``."""
    t, left, h, w = box
    return all(t + h < bt or bt + bh < t or left + w < bl or bl + bw < left for bt, bl, bh, bw in boxes)


def digit_canvases(x: Tensor, y: Tensor, *, seed: int | Sequence[int]) -> MaskSplit:
    """One canvas per digit of ``x`` (N x 1 x 28 x 28 uint8) with labels ``y``: that digit large and up to
    :data:`SMALL_DIGITS` others of ``x`` small (see the module docstring)."""
    n = len(x)
    if n < 2:
        raise DataError("digit canvases hold several digits: give at least two")
    rng = np.random.default_rng(seed)
    crops = [ink_crop(d) for d in x.numpy()[:, 0]]
    labels = y.numpy()
    image = np.zeros((n, CANVAS, CANVAS), dtype=np.uint8)
    label = np.zeros((n, CANVAS, CANVAS), dtype=np.uint8)
    size = np.zeros((n, CANVAS, CANVAS), dtype=np.uint8)
    for i in range(n):
        boxes: list[tuple[int, int, int, int]] = []
        picks = [(i, int(rng.integers(LARGE[0], LARGE[1] + 1)), 2)]
        picks += [((i + int(rng.integers(1, n))) % n, int(rng.integers(SMALL[0], SMALL[1] + 1)), 1)
                  for _ in range(SMALL_DIGITS)]  # fmt: skip
        for j, side, bucket in picks:
            digit = resized(crops[j], side)
            h, w = digit.shape
            for _ in range(PLACEMENT_TRIES if boxes else 1):
                top, left = int(rng.integers(0, CANVAS - h + 1)), int(rng.integers(0, CANVAS - w + 1))
                if _free((top, left, h, w), boxes):
                    break
            else:
                continue  # no room left for this small digit
            boxes.append((top, left, h, w))
            where = (i, slice(top, top + h), slice(left, left + w))
            image[where] = digit
            label[where] = np.where(digit >= INK, 1 + labels[j], 0)
            size[where] = bucket
    return MaskSplit(torch.from_numpy(image)[:, None], torch.from_numpy(label), torch.from_numpy(size))


@functools.lru_cache(maxsize=4)
def _mnist5k_seg_splits(val_fraction: float, test_copies: int = 1) -> tuple[MaskSplit, MaskSplit | None, MaskSplit]:
    """The canvases of mnist5k's train, validation and test digits, built once per process; ``test_copies``
    canvases per test digit (copy k from ``default_rng((SEG_SEED, 2, k))``; copy 0 the usual one)."""
    digits = load_dataset("mnist5k", val_fraction=val_fraction)
    parts: list[MaskSplit | None] = []
    for k, part in enumerate((digits.train, digits.val, digits.test)):
        assert part is None or isinstance(part, TensorSplit)
        parts.append(
            None if part is None else digit_canvases(part.x, part.y, seed=np.random.SeedSequence((SEG_SEED, k)))
        )
    train, val, test = parts
    assert train is not None and test is not None and isinstance(digits.test, TensorSplit)
    if test_copies > 1:
        seeds = [np.random.SeedSequence((SEG_SEED, 2, k)) for k in range(1, test_copies)]
        copies = [test, *(digit_canvases(digits.test.x, digits.test.y, seed=s) for s in seeds)]
        test = MaskSplit(*(torch.cat([getattr(c, f) for c in copies]) for f in ("x", "y", "sizes")))
    return train, val, test


def _mnist5k_seg(val_fraction: float, test_copies: int = 1) -> SegmentationDataset:
    train, val, test = _mnist5k_seg_splits(val_fraction, test_copies)
    return SegmentationDataset(
        "mnist5k-seg", DIGIT_CLASSES, 1, CANVAS, "tensor", train, val, test, S.MNIST5K_SEG,
        size_buckets=SIZE_BUCKETS, augment=CANVAS_SHIFT,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- segfolder


def read_mask(path: str | Path) -> Tensor:
    """A mask file as an H x W uint8 tensor of class indices (255: ignore); a DataError for a file that is not
    a single-channel image (a colour-coded mask must be converted to indices first) or holds values above 255."""
    mask = open_image(path, mode=None)
    if mask.mode not in MASK_MODES:
        raise DataError(
            f"{str(path)!r} is a {mask.mode} image; a mask holds one class index per pixel (a PNG of mode L or P)"
        )
    values = np.asarray(mask)
    if values.max(initial=0) > 255:
        raise DataError(f"{str(path)!r} holds the value {values.max()}; class indices go up to 254 (255: ignore)")
    return torch.from_numpy(values.astype(np.uint8))


def check_class_ids(mask: Tensor, num_classes: int, path: str | Path) -> None:
    """A DataError when ``mask`` (read from ``path``) holds a class index that is neither below ``num_classes``
    nor :data:`~cnnlab.data.metrics.IGNORE_INDEX`: a label that no output of the model stands for."""
    values = torch.unique(mask)
    bad = values[(values >= num_classes) & (values != IGNORE_INDEX)].tolist()
    if bad:
        raise DataError(
            f"{str(path)!r} holds the class index {', '.join(map(str, bad[:5]))}, and the data set has "
            f"{num_classes} classes (0..{num_classes - 1}; {IGNORE_INDEX}: ignore); fix the mask, or name every "
            "class in the folder's classes.txt, one a line"
        )


def _pairs(root: Path) -> list[tuple[Path, Path]]:
    """(image, mask) of every image in ``root/images``, its mask ``root/masks/<stem>.png``."""
    images_dir, masks_dir = root / "images", root / "masks"
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            raise DataError(f"segfolder: {str(d)!r} is not a folder (expected images/ and masks/ in {str(root)!r})")
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"segfolder: no images in {str(images_dir)!r} (suffixes {', '.join(IMAGE_SUFFIXES)})")
    missing = [p.name for p in images if not (masks_dir / f"{p.stem}.png").is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(f"segfolder: {len(missing)} image(s) without a mask {masks_dir}/<name>.png: {shown}")
    return [(p, masks_dir / f"{p.stem}.png") for p in images]


def _classes(path: Path, parts: list[MaskFolderSplit]) -> list[str]:
    """The names in ``path/classes.txt``, every mask checked against them; without the file, ``0..K-1`` for the
    largest class index K-1 of the masks."""
    listed = path / "classes.txt"
    masks = [m for part in parts for _, m in part.pairs]
    if listed.is_file():
        try:
            names = [line.strip() for line in listed.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"segfolder: cannot read {str(listed)!r} as text, one class name a line ({e})") from e
        if not names:
            raise DataError(f"segfolder: {str(listed)!r} names no class")
        for m in masks:
            check_class_ids(read_mask(m), len(names), m)
        return names
    labels = {int(v) for m in masks for v in torch.unique(read_mask(m)).tolist()}
    largest = max(labels - {IGNORE_INDEX}, default=0)
    return [str(c) for c in range(largest + 1)]


def _random_split(
    part: MaskFolderSplit, fraction: float, *, seed: int, what: str
) -> tuple[MaskFolderSplit, MaskFolderSplit]:
    """(rest, part): ``fraction`` of the pairs at random (the stratified split of one class)."""
    rest, taken = stratified_split(
        np.zeros(len(part), dtype=np.int64), fraction, seed=seed, what=what, classes=["image"]
    )
    return part.subset(rest), part.subset(taken)


def _segfolder(path: Path, val_fraction: float) -> SegmentationDataset:
    if not path.is_dir():
        raise DataError(f"segfolder: {str(path)!r} is not a folder (expected images/ and masks/)")
    if (path / "train").is_dir():
        train = MaskFolderSplit(_pairs(path / "train"))
        val = MaskFolderSplit(_pairs(path / "val")) if (path / "val").is_dir() else None
        test = MaskFolderSplit(_pairs(path / "test")) if (path / "test").is_dir() else None
        if val is None and val_fraction > 0:
            train, val = _random_split(train, val_fraction, seed=VAL_SPLIT_SEED, what="validation")
    else:
        full = MaskFolderSplit(_pairs(path))
        train, test = _random_split(full, 0.2, seed=TEST_SPLIT_SEED, what="test")
        val = None
        if val_fraction > 0:
            train, val = _random_split(train, val_fraction, seed=VAL_SPLIT_SEED, what="validation")
    classes = _classes(path, [p for p in (train, val, test) if p is not None])
    train, val, test = (None if p is None else MaskFolderSplit(p.pairs, len(classes)) for p in (train, val, test))
    assert train is not None
    return SegmentationDataset(
        f"segfolder:{path}", classes, 3, None, "folder", train, val, test, S.IMAGENET, augment=FOLDER_FLIP
    )


def load_segmentation(
    name: str, *, val_fraction: float = DEFAULT_VAL_FRACTION, test_copies: int = 1
) -> SegmentationDataset:
    """The segmentation data set ``name`` (``"mnist5k-seg"`` or ``"segfolder:PATH"``) with its splits; a
    DataError says what is missing and where. ``test_copies``: canvases per test digit (mnist5k-seg only)."""
    if name == "mnist5k-seg":
        return _mnist5k_seg(val_fraction, test_copies)
    if test_copies != 1:
        raise DataError(f"test_copies builds more test canvases of mnist5k-seg; {name}'s test images are files: "
                        "use test_copies 1")  # fmt: skip
    if name.startswith("segfolder:"):
        return _segfolder(Path(name.split(":", 1)[1]).expanduser(), val_fraction)
    raise DataError(
        f"unknown segmentation data set {name!r}.{suggest(name, SEGMENTATION_DATASETS)} "
        f"Segmentation data sets: {', '.join(SEGMENTATION_DATASETS)}."
    )


def load_any(
    name: str,
    *,
    data_dir: str = "data",
    download: bool = False,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    classes: Sequence[int] | None = None,
    train_per_class: int | None = None,
    test_copies: int = 1,
) -> Dataset | SegmentationDataset:
    """The classification (:func:`cnnlab.data.load_dataset`) or segmentation (:func:`load_segmentation`) data
    set called ``name``. ``classes`` and ``train_per_class`` pick images by their one label, which a
    segmentation canvas does not have: a DataError for a segmentation set."""
    if not is_segmentation(name):
        return load_dataset(
            name, data_dir=data_dir, download=download, val_fraction=val_fraction, classes=classes,
            train_per_class=train_per_class, test_copies=test_copies,
        )  # fmt: skip
    if classes is not None or train_per_class is not None:
        raise DataError(
            f"{name} is a segmentation data set: classes and train_per_class select images by their one label, "
            "and a segmentation image has a label per pixel; leave them out"
        )
    return load_segmentation(name, val_fraction=val_fraction, test_copies=test_copies)
