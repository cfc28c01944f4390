"""Issue 23's cases of ``cnnlab train``, ``eval``, ``predict``, ``export`` and ``report``: each reproduced, each now a
clear message (exit code 2, one line, no traceback) or a finished command that says what it could not do, and a
refused run leaves no run folder behind."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.cli import main
from cnnlab.data import load_any, make_loader
from cnnlab.errors import DataError
from cnnlab.machine import total_memory
from cnnlab.registry import meta_model
from cnnlab.train import fit, memory
from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.train.config import MAX_EPOCHS, MAX_IMAGE_SIZE
from tests.train_fixtures import TINY, TINY_FLAGS, tiny_config, write_image_folder, write_mnist, write_squares


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(write_mnist's digits, a finished 1-epoch run of the tiny ResNet on them)."""
    root = tmp_path_factory.mktemp("run-errors")
    data = write_mnist(root / "data")
    return data, fit(tiny_config(data, root / "runs", epochs=1, run_name="r"), log=lambda _s: None).run_dir


@pytest.fixture
def run(finished: tuple[Path, Path], tmp_path: Path) -> Path:
    """A copy of the finished run, for a test to damage."""
    return Path(shutil.copytree(finished[1], tmp_path / "r"))


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``cnnlab ARGV`` run in-process."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def refused(argv: list[str], capsys: pytest.CaptureFixture[str], *messages: str) -> str:
    """Assert that ``argv`` is a usage error: exit code 2, one line of stderr holding each of ``messages``."""
    code, _, err = cli(argv, capsys)
    assert code == 2 and err.startswith("cnnlab: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and all(m in err for m in messages), err
    return err


def train(data: Path, out: Path, *flags: str) -> list[str]:
    return ["train", *TINY_FLAGS, "--data", "mnist", "--data-dir", str(data), "--epochs", "1", "--no-progress",
            "--device", "cpu", "--out-dir", str(out), *flags]  # fmt: skip


# ---------------------------------------------------------------------------------------------- sizes and counts


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--image-size", "100000"], f"image_size must be an integer in [1, {MAX_IMAGE_SIZE}] (or None: the data"),
        (["--epochs", str(10**20)], f"epochs must be an integer in [1, {MAX_EPOCHS}], got {10**20}"),
        (["--workers", "100000"], "workers must be an integer in [0, 256], got 100000"),
        (["--device=--"], "device must be a string, got []"),  # argparse drops a value of "--"
    ],
)
def test_sizes_and_counts_beyond_their_bounds_are_refused(
    flags: list[str], message: str, finished: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(train(finished[0], tmp_path / "out", *flags), capsys, message)
    assert not (tmp_path / "out").exists()


def test_activation_bytes_add_up_every_layer_output_and_the_input() -> None:
    with torch.device("meta"):  # shapes only
        layers = [nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2)]
        model = nn.Sequential(
            *layers, nn.Conv2d(4, 8, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)
        )
    for s in (8, 30, 1000):
        pooled, strided = s // 2, (s // 2 - 3) // 2 + 1
        floats = s * s + 3 * 4 * s * s + 4 * pooled**2 + 8 * strided**2 + 8 + 8 + 3  # input, conv-bn-relu, pool, ...
        assert memory.activation_bytes(model, 1, s) == 4 * floats


@pytest.mark.skipif(not Path("/proc/meminfo").is_file(), reason="Linux's /proc/meminfo is the oracle")
def test_the_cpu_s_memory_is_the_machine_s_ram() -> None:
    line = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal:"))
    assert total_memory(torch.device("cpu")) == int(line.split()[1]) * 1024  # kB
    assert total_memory(torch.device("meta")) is None


def test_a_run_that_cannot_fit_in_memory_is_refused_before_its_folder(
    finished: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = 2**30  # a machine of 1 GiB
    monkeypatch.setattr(memory, "total_memory", lambda _device: budget)
    size = 1024
    err = refused(
        train(finished[0], tmp_path / "out", "--image-size", str(size)),
        capsys,
        f"training cifar_resnet20 on {size}x{size} images in batches of 64 needs at least",
        "more than the 1.0 GiB of RAM of this machine: at 1024 px batches of at most",
        "lower --image-size or --batch-size",
    )
    assert not (tmp_path / "out").exists()
    most = int(err.split("batches of at most ")[1].split(" fit")[0].replace(",", ""))
    model = meta_model(TINY["model"], TINY["model_kwargs"], num_classes=10, in_chans=1)
    for batch, fits in ((most, True), (most + 1, False)):  # the batch it names is the largest that fits
        used = sum(memory.training_bytes(model, 1, size, batch))
        assert (used <= budget) == fits


def test_a_run_that_fits_is_not_refused(finished: tuple[Path, Path], tmp_path: Path) -> None:
    config = tiny_config(finished[0], tmp_path, image_size=64)
    data = load_any("mnist", data_dir=str(finished[0]))
    memory.check_fits_memory(config, data, 64, torch.device("cpu"))  # 16 x 64 px x ~1.5k params: a few MiB


# ---------------------------------------------------------------------------------------------- data


def test_a_one_class_image_folder_is_refused_at_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], finished: tuple[Path, Path]
) -> None:
    folder = write_image_folder(tmp_path / "one", classes=("ant",), per_class=10)
    argv = ["train", *TINY_FLAGS, "--data", f"imagefolder:{folder}", "--image-size", "8", "--out-dir", str(tmp_path)]
    refused(argv, capsys, "has 1 class ('ant'): a classifier needs at least 2 classes")
    refused(train(finished[0], tmp_path / "out", "--classes", "3"), capsys, "(classes=[3] keeps only that one)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one"]


def seg_folder(root: Path) -> Path:
    """write_squares' 12 images of classes 0-2 with a classes.txt naming three classes."""
    folder = write_squares(root, 12)
    (folder / "classes.txt").write_text("background\nwarm\ncool\n")
    return folder


def paint(mask: Path, label: int) -> None:
    values = np.asarray(Image.open(mask)).copy()
    values[2, 2] = label
    Image.fromarray(values).save(mask)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_mask_with_a_class_beyond_classes_txt_is_refused_before_the_run_folder(
    workers: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = seg_folder(tmp_path / "seg")
    paint(folder / "masks" / "3.png", 7)
    argv = ["train", "--model", "fcn_cifar_resnet20", "--data", f"segfolder:{folder}", "--image-size", "16",
            "--epochs", "1", "--workers", workers, "--out-dir", str(tmp_path / "out")]  # fmt: skip
    refused(argv, capsys, f"'{folder}/masks/3.png' holds the class index 7, and the data set has 3 classes (0..2; "
            "255: ignore)")  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_a_worker_s_cnnlab_error_arrives_as_itself(tmp_path: Path) -> None:
    """A mask changed after loading is caught where a DataLoader worker reads it, and its error reaches the caller
    with its own type and message, not the worker's traceback."""
    data = load_any(f"segfolder:{seg_folder(tmp_path / 'seg')}")
    bad = data.train.pairs[0][1]
    paint(bad, 9)
    loader = make_loader(data, "train", data.pipeline(size=16), batch_size=4, workers=2)
    with pytest.raises(DataError) as error:
        list(loader.batches())
    assert str(error.value) == (
        f"'{bad}' holds the class index 9, and the data set has 3 classes (0..2; 255: ignore); fix the mask, or "
        "name every class in the folder's classes.txt, one a line"
    )


def test_an_unreadable_image_in_a_worker_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_image_folder(tmp_path / "imgs", per_class=6)
    for path in sorted(folder.rglob("*.png")):
        path.write_bytes(b"not a png")
    argv = ["train", *TINY_FLAGS, "--data", f"imagefolder:{folder}", "--image-size", "8", "--epochs", "1",
            "--workers", "2", "--no-progress", "--out-dir", str(tmp_path / "out")]  # fmt: skip
    err = refused(argv, capsys, "cannot read '", "as an image (UnidentifiedImageError")
    assert "worker" not in err


# ---------------------------------------------------------------------------------------------- checkpoints


def test_an_empty_best_checkpoint_points_to_last(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run / "best.pt").write_bytes(b"")
    refused(["eval", str(run)], capsys, "cut off (0 bytes); use ", f"{run}/last.pt instead, the run's other checkpoint")
    data = bytearray((run / "last.pt").read_bytes())
    data[100] ^= 0xFF
    (run / "last.pt").write_bytes(bytes(data))
    refused(["train", "--resume", str(run)], capsys, "is damaged", f"use {run}/best.pt instead")


def test_non_finite_weights_are_refused_by_eval_predict_and_export(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = load_checkpoint(run / "best.pt")
    state["model"] = {k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in state["model"].items()}
    save_checkpoint({k: v for k, v in state.items() if k != "path"}, tmp_path / "nan.pt")
    Image.new("L", (28, 28)).save(tmp_path / "digit.png")
    for argv in (["eval", str(tmp_path / "nan.pt")], ["predict", str(tmp_path / "nan.pt"), str(tmp_path / "digit.png")],
                 ["export", str(tmp_path / "nan.pt")]):  # fmt: skip
        refused(argv, capsys, f"the weights in '{tmp_path}/nan.pt' hold NaN or infinite values (", "outputs NaN")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digit.png", "nan.pt", "r"]


def test_eval_into_a_read_only_folder_prints_its_scores_and_says_what_it_could_not_write(
    run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.figure

    def read_only(_fig: object, path: object, **_kw: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", read_only)
    code, out, err = cli(["eval", str(run)], capsys)
    assert code == 0 and "accuracy" in out and "Traceback" not in err
    assert err == (
        f"cnnlab eval: warning: could not write confusion.png in {run} (Permission denied); the scores above are "
        "complete; --out FOLDER writes the file elsewhere\n"
    )
    assert not (run / "confusion.png").exists()


# ---------------------------------------------------------------------------------------------- report


DAMAGE = {
    "config.yaml": (b"model: [\n", "is not valid YAML"),
    "metrics.csv": (b"epoch,train_loss\n1,abc\n", "could not convert string to float: 'abc'"),
    "results.json": (b'{"test": ', "Expecting value: line 1 column 10"),
}


@pytest.mark.parametrize("name", DAMAGE)
def test_report_of_a_damaged_run_shows_what_the_checkpoint_records(
    name: str, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = load_checkpoint(run / "last.pt")
    content, why = DAMAGE[name]
    (run / name).write_bytes(content)
    code, out, err = cli(["report", str(run)], capsys)
    assert code == 0 and out.startswith(f"wrote {run}/report.html") and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(f"warning: {run}/{name} is damaged (") and why in err, err
    page = (run / "report.html").read_text()
    assert f"{run}/{name} is damaged" in page
    if name == "results.json":
        assert "its test results are left out" in err and "no results.json test entry" in page
    else:
        assert f"shown from {run}/last.pt instead" in err
        assert f"{len(state['history'])} epochs" in page and state["config"]["model"] in page
