"""Segmentation data: the mnist5k-seg canvases (their splits, scales, labels and size buckets), segfolder on tiny
files written in the real format (RGB images, PNG masks of mode L and P), and the scores against small examples
computed by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from cnnlab.data import (
    IGNORE_INDEX,
    bucket_matrices,
    class_iou,
    confusion_matrix,
    load_dataset,
    load_segmentation,
    mean_iou,
    pixel_accuracy,
    segmentation_scores,
)
from cnnlab.data import segmentation as seg
from cnnlab.errors import DataError

# ---------------------------------------------------------------------------------------------- mnist5k-seg


@pytest.fixture(scope="module")
def canvases() -> seg.SegmentationDataset:
    return load_segmentation("mnist5k-seg")


def boxes(sizes: np.ndarray, bucket: int) -> list[tuple[int, int]]:
    """(height, width) of each digit box of ``bucket`` in one size map (boxes never touch)."""
    found, _ = ndimage.label(sizes == bucket)
    return [(s[0].stop - s[0].start, s[1].stop - s[1].start) for s in ndimage.find_objects(found)]


def test_canvases_follow_mnist5ks_splits(canvases: seg.SegmentationDataset) -> None:
    """One canvas per digit of each mnist5k split, that digit large: the large box's strokes carry its label."""
    digits = load_dataset("mnist5k")
    assert canvases.sizes() == digits.sizes() == "3,600 train / 400 val / 1,000 test"
    assert canvases.num_classes == 11 and canvases.classes[:2] == ["background", "0"] and canvases.in_chans == 1
    for part in ("train", "val", "test"):
        c, d = canvases.split(part), digits.split(part)
        assert c.x.shape == (len(d), 1, 64, 64) and c.y.shape == c.sizes.shape == (len(d), 64, 64)
        assert c.x.dtype == c.y.dtype == c.sizes.dtype == torch.uint8
        large = torch.where(c.sizes == 2, c.y, 0).flatten(1)
        assert torch.equal(large.max(1).values, 1 + d.y)  # the large digit is digit i of the split


def test_canvases_hold_digits_of_their_own_split_only() -> None:
    """Canvases are built from the digits they are given alone: from 3s and 7s, only labels 4 and 8 appear."""
    digits = load_dataset("mnist5k", classes=[3, 7])  # relabelled 0, 1; give back the digits' own labels
    x, y = digits.test.x, torch.tensor([3, 7])[digits.test.y]
    made = seg.digit_canvases(x, y, seed=(seg.SEG_SEED, 2))
    assert set(torch.unique(made.y).tolist()) == {0, 4, 8}


def test_two_scales_per_canvas(canvases: seg.SegmentationDataset) -> None:
    """One large digit (its larger side 40-48 px) and up to three small ones (10-14 px) per canvas."""
    sizes = canvases.test.sizes.numpy()
    small_counts = []
    for s in sizes[::10]:
        large, small = boxes(s, 2), boxes(s, 1)
        assert len(large) == 1 and 40 <= max(large[0]) <= 48
        assert all(10 <= max(b) <= 14 for b in small) and len(small) <= 3
        small_counts.append(len(small))
    assert np.mean(small_counts) > 2.5  # there is nearly always room for all three


def test_labels_are_the_strokes_inside_the_boxes(canvases: seg.SegmentationDataset) -> None:
    part = canvases.val
    assert torch.equal(part.y > 0, part.x[:, 0] >= seg.INK)  # a stroke pixel is labelled, the rim is background
    assert not ((part.y > 0) & (part.sizes == 0)).any()  # every stroke lies in a digit's box
    assert part.y.max() <= 10 and IGNORE_INDEX not in part.y


def test_canvases_are_fixed_cached_and_their_statistics_stated(canvases: seg.SegmentationDataset) -> None:
    assert load_segmentation("mnist5k-seg").train.x is canvases.train.x  # built once per process
    digits = load_dataset("mnist5k")
    again = seg.digit_canvases(digits.val.x, digits.val.y, seed=(seg.SEG_SEED, 1))
    assert torch.equal(again.x, canvases.val.x) and torch.equal(again.sizes, canvases.val.sizes)
    x = canvases.train.x.float() / 255
    assert (round(x.mean().item(), 4), round(x.std().item(), 4)) == (canvases.stats.mean[0], canvases.stats.std[0])
    assert canvases.pipeline(min_size=64).size == 64 and canvases.size_buckets == ("small", "large")
    assert load_segmentation("mnist5k-seg", val_fraction=0).val is None


def test_classification_loaders_refuse_segmentation_names() -> None:
    for name in ("mnist5k-seg", "segfolder:/tmp/x"):
        with pytest.raises(DataError, match=r"segmentation data set .*load_segmentation.*segmentation model"):
            load_dataset(name)
    with pytest.raises(DataError, match="Did you mean: mnist5k-seg"):
        load_segmentation("mnist5k-sge")


# ---------------------------------------------------------------------------------------------- segfolder

PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [224, 224, 192] * 253  # VOC-like: class colours, 255 the border


def write_pair(root: Path, name: str, label: int, *, palette: bool = False, size: tuple[int, int] = (6, 5)) -> None:
    """An RGB image and its mask: a 2x2 square of ``label`` on background, one ignored pixel."""
    w, h = size
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 10 * label, dtype=np.uint8)).save(root / "images" / f"{name}.jpg")
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[1:3, 1:3], mask[-1, -1] = label, IGNORE_INDEX
    img = Image.fromarray(mask, mode="L")
    if palette:
        img = img.convert("P")
        img.putpalette(PALETTE)
    img.save(root / "masks" / f"{name}.png")


def test_segfolder_splits_a_flat_folder(tmp_path: Path) -> None:
    for k in range(10):
        write_pair(tmp_path, f"im{k}", 1 + k % 3, palette=k % 2 == 1)
    data = load_segmentation(f"segfolder:{tmp_path}")
    assert data.sizes() == "7 train / 1 val / 2 test" and data.classes == ["0", "1", "2", "3"]
    assert (data.in_chans, data.kind, data.size_buckets) == (3, "folder", ())
    pairs = data.train.pairs + data.val.pairs + data.test.pairs
    assert sorted(p[0].stem for p in pairs) == [f"im{k}" for k in range(10)]
    image, mask = data.train.item(0)
    label = 1 + int(data.train.pairs[0][0].stem[2:]) % 3
    assert image.mode == "RGB" and image.size == (6, 5) and mask.dtype == torch.uint8
    assert mask.tolist()[1][1:3] == [label, label] and mask[-1, -1] == IGNORE_INDEX  # P masks keep their indices
    assert load_segmentation(f"segfolder:{tmp_path}").test.pairs == data.test.pairs  # a fixed split


def test_segfolder_with_named_splits_and_classes(tmp_path: Path) -> None:
    for part, n in (("train", 4), ("val", 2), ("test", 2)):
        for k in range(n):
            write_pair(tmp_path / part, f"{part}{k}", 2)
    (tmp_path / "classes.txt").write_text("background\nsquare\ncircle\n")
    data = load_segmentation(f"segfolder:{tmp_path}")
    assert data.sizes() == "4 train / 2 val / 2 test" and data.classes == ["background", "square", "circle"]
    assert data.val.pairs[0][1] == tmp_path / "val" / "masks" / "val0.png"


def test_segfolder_errors(tmp_path: Path) -> None:
    write_pair(tmp_path, "a", 1)
    write_pair(tmp_path, "b", 1)
    (tmp_path / "masks" / "b.png").unlink()
    with pytest.raises(DataError, match=r"1 image\(s\) without a mask .*: b.jpg"):
        load_segmentation(f"segfolder:{tmp_path}")
    write_pair(tmp_path, "b", 1, size=(7, 5))
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "masks" / "b.png")
    with pytest.raises(DataError, match=r"is 7x5 pixels but its mask .* is 4x4"):
        seg.MaskFolderSplit([(tmp_path / "images" / "b.jpg", tmp_path / "masks" / "b.png")]).item(0)
    Image.fromarray(np.zeros((5, 6, 3), dtype=np.uint8)).save(tmp_path / "masks" / "rgb.png")
    with pytest.raises(DataError, match="is a RGB image; a mask holds one class index per pixel"):
        seg.read_mask(tmp_path / "masks" / "rgb.png")
    with pytest.raises(DataError, match="expected images/ and masks/"):
        load_segmentation(f"segfolder:{tmp_path / 'nowhere'}")


# ---------------------------------------------------------------------------------------------- scores

TARGET = torch.tensor([[0, 0, 1], [1, 2, IGNORE_INDEX]])
PRED = torch.tensor([[0, 1, 1], [2, 2, 0]])
SIZES = torch.tensor([[0, 1, 1], [2, 2, 2]])


def test_confusion_matrix_and_scores_by_hand() -> None:
    """Five counted pixels (the sixth is ignored): rows true, columns predicted."""
    m = confusion_matrix(PRED, TARGET, 3, ignore_index=IGNORE_INDEX)
    assert m.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert pixel_accuracy(m) == pytest.approx(3 / 5)
    # IoU_c = m[c, c] / (row_c + col_c - m[c, c]): 1 / (2 + 1 - 1), 1 / (2 + 2 - 1), 1 / (1 + 2 - 1)
    assert class_iou(m).tolist() == pytest.approx([1 / 2, 1 / 3, 1 / 2])
    assert mean_iou(m) == pytest.approx(4 / 9)
    assert mean_iou(m, classes=[1, 2]) == pytest.approx(5 / 12)  # the foreground classes alone
    assert confusion_matrix(PRED, TARGET.clamp_max(2), 3).sum() == 6  # without ignore_index every pixel counts


def test_a_class_neither_labelled_nor_predicted_has_no_iou() -> None:
    m = confusion_matrix(PRED, TARGET, 4, ignore_index=IGNORE_INDEX)
    assert math.isnan(class_iou(m)[3]) and mean_iou(m) == pytest.approx(4 / 9)
    assert math.isnan(mean_iou(torch.zeros(2, 2, dtype=torch.int64))) and math.isnan(pixel_accuracy(torch.zeros(2, 2)))


def test_iou_per_size_bucket_by_hand() -> None:
    """small: pixels (0, 1), (0, 2), labelled 0, 1, both predicted 1: IoU_0 = 0, IoU_1 = 1 / 2. large: (1, 0),
    (1, 1) (the third is ignored), labelled 1, 2, predicted 2, 2: IoU_1 = 0, IoU_2 = 1 / 2."""
    buckets = bucket_matrices(PRED, TARGET, SIZES, 3, ("small", "large"))
    assert buckets["small"].tolist() == [[0, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert buckets["large"].tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 1]]
    scores = segmentation_scores(confusion_matrix(PRED, TARGET, 3, ignore_index=IGNORE_INDEX), buckets, classes="abc")
    assert scores["bucket_mean_iou"] == pytest.approx({"small": 0.25, "large": 0.25})
    assert scores["class_iou"] == pytest.approx({"a": 1 / 2, "b": 1 / 3, "c": 1 / 2})
    assert scores["pixel_accuracy"] == pytest.approx(0.6) and scores["mean_iou"] == pytest.approx(4 / 9)
    total = sum(buckets.values(), torch.zeros(3, 3, dtype=torch.int64))
    assert total.sum() == 4  # the bucket matrices add up to the pixels in some box (the one at (0, 0) is in none)
