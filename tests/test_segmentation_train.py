"""Segmentation through the trainer: ``cnnlab train`` on mnist5k-seg (a few of its real canvases), its metrics and
results, eval / predict / export of the run, exact resume, the pixel loss, masks moved with their images, and
the refusals of a model and data of different tasks."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.cli import main
from cnnlab.data import IGNORE_INDEX, joint_crop_flip, load_any, make_loader
from cnnlab.data import segmentation as seg
from cnnlab.data.metrics import confusion_matrix
from cnnlab.errors import ConfigError, DataError
from cnnlab.experiments.experiment import run_experiment
from cnnlab.experiments.ledger import _measured
from cnnlab.experiments.spec import spec_from_dict
from cnnlab.models.base import LogitsWithAux
from cnnlab.registry import build_model
from cnnlab.train import TrainConfig, fit
from cnnlab.train.engine import PixelTotals, classification_loss, evaluate_pixels
from cnnlab.train.runlog import read_metrics
from tests.helpers import png_figure
from tests.train_fixtures import StopAt, assert_same_weights, metrics, write_squares

SEG_FLAGS = ["--model", "fcn_cifar_resnet20", "--data", "mnist5k-seg", "--batch-size", "8", "--no-progress"]
SIZES = {"train": 18, "val": 8, "test": 8}  # 18 train canvases in batches of 8: 3 steps per epoch
ALL_CANVASES = seg._mnist5k_seg  # before the fixture below replaces it


def few_canvases(sizes: dict[str, int]) -> seg.SegmentationDataset:
    """mnist5k-seg with ``sizes[split]`` canvases per split, spread over it (its canvases follow the class order
    of their large digit)."""
    data = ALL_CANVASES(0.1)
    parts = {k: getattr(data, k).subset(np.linspace(0, len(getattr(data, k)) - 1, n).astype(int))
             for k, n in sizes.items()}  # fmt: skip
    return dataclasses.replace(data, **parts)


@pytest.fixture(scope="module")
def small_seg() -> Iterator[None]:
    """``--data mnist5k-seg`` reads :func:`few_canvases` (the real canvases, few of them) in this module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(seg, "_mnist5k_seg", lambda val_fraction, test_copies=1: few_canvases(SIZES))
        yield


@pytest.fixture(scope="module")
def run(small_seg: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seg")
    assert main(["train", *SEG_FLAGS, "--epochs", "1", "--out-dir", str(out), "--run-name", "r"]) == 0
    return out / "r"


def test_one_epoch_logs_iou_per_epoch_and_tests_once(run: Path) -> None:
    (row,) = read_metrics(run)
    for key in ("val_miou", "val_small_iou", "val_large_iou", "val_acc", "train_acc"):
        assert 0 <= float(row[key]) <= 1, key
    results = json.loads((run / "results.json").read_text())
    assert results["best_epoch"] == 1 and results["best_val_miou"] == pytest.approx(float(row["val_miou"]))
    final = results["test"]["final"]
    assert {"test_miou", "test_small_iou", "test_large_iou", "test_acc", "test_loss"} <= set(final)
    assert list(final["test_class_iou"]) == seg.DIGIT_CLASSES
    present = [v for v in final["test_class_iou"].values() if v is not None]  # the mean over the classes that have one
    assert final["test_miou"] == pytest.approx(sum(present) / len(present))
    ious = [v for v in final["test_class_iou"].values() if v is not None]
    assert final["test_miou"] == pytest.approx(sum(ious) / len(ious))  # the mean over the classes that have one
    assert "test mean IoU" in (run / "report.html").read_text()  # the run page evaluates it as a segmentation net


def test_eval_writes_the_iou_table_and_the_masks_png(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(run), "--show", "3"]) == 0
    out = capsys.readouterr().out
    results = json.loads((run / "results.json").read_text())["test"]["best"]
    assert f"mean IoU   {results['test_miou']:.4f}" in out and "small IoU" in out and "background" in out
    rows = (run / "iou_test.csv").read_text().splitlines()
    assert rows[0] == "class,pixels,iou" and len(rows) == 1 + 11 + 3  # classes, mean, small and large
    width, height = png_figure(run / "masks_test.png")
    assert height > width  # three rows (--show 3) of input, true and predicted mask


def test_predict_writes_a_mask_and_an_overlay(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    canvas = few_canvases({"test": 2}).test.x[1, 0].numpy()
    Image.fromarray(canvas).resize((80, 70)).save(tmp_path / "digits.png")  # another size than the canvases'
    assert main(["predict", str(run), str(tmp_path / "digits.png"), "--out", str(tmp_path / "out")]) == 0
    assert "mask" in capsys.readouterr().out
    mask = Image.open(tmp_path / "out" / "digits_mask.png")
    overlay = Image.open(tmp_path / "out" / "digits_overlay.png")
    assert mask.mode == "P" and mask.size == overlay.size == (80, 70) and overlay.mode == "RGB"
    assert np.asarray(mask).max() < 11  # class indices


def test_export_to_onnx_matches_pytorch(run: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from cnnlab.train.predict import model_from_checkpoint

    assert main(["export", str(run), "--output", str(tmp_path / "seg.onnx")]) == 0
    model, _ = model_from_checkpoint(run)
    x = torch.randn(3, 1, 64, 64)
    got = ort.InferenceSession(str(tmp_path / "seg.onnx")).run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        want = model(x)
    assert got.shape == (3, 11, 64, 64) and np.abs(got - want.numpy()).max() < 1e-4


def test_a_stopped_segmentation_run_resumes_exactly(small_seg: None, tmp_path: Path) -> None:
    base = dict(model="fcn_cifar_resnet20", data="mnist5k-seg", epochs=2, batch_size=8, out_dir=str(tmp_path),
                progress=False, device="cpu")  # fmt: skip
    straight = fit(TrainConfig(**base, run_name="straight"), log=lambda _s: None)
    cfg = TrainConfig(**base, run_name="halves")
    with pytest.raises(KeyboardInterrupt):  # 3 steps per epoch: stop after step 1 of epoch 2
        fit(cfg, callbacks=[StopAt(3)], log=lambda _s: None)
    resumed = fit(cfg.replace(resume=str(tmp_path / "halves")), log=lambda _s: None)
    assert_same_weights(straight.model.state_dict(), resumed.model.state_dict())
    assert metrics(resumed) == metrics(straight) and resumed.test == straight.test
    assert [m.val_miou for m in resumed.history] == [m.val_miou for m in straight.history]


def test_a_segfolder_trains_with_each_mask_flipped_with_its_image(tmp_path: Path) -> None:
    folder = write_squares(tmp_path / "squares", 20)  # 14 train (in batches of 4: the last 2), 2 val, 4 test
    config = TrainConfig(model="fcn_cifar_resnet20", data=f"segfolder:{folder}", image_size=16, epochs=1,
                         batch_size=4, out_dir=str(tmp_path), run_name="r", progress=False, device="cpu")  # fmt: skip
    result = fit(config, log=lambda _s: None)
    (row,) = read_metrics(tmp_path / "r")
    assert float(row["val_miou"]) >= 0 and row["val_small_iou"] == ""  # a folder has no size buckets
    assert result.test["final"].test_miou is not None and result.test["final"].test_small_iou is None
    data = load_any(f"segfolder:{folder}")
    pipeline = data.pipeline(size=16)
    for x, y, _ in make_loader(data, "train", pipeline, batch_size=4, seed=1).batches(epoch=1):
        bright = pipeline.denormalize(x).amax(1) > 100
        kept = y != IGNORE_INDEX
        assert torch.equal(bright[kept], (y > 0)[kept]) and kept.sum() == y.numel() - len(y)


def test_the_pixel_loss_ignores_255_and_weighs_the_aux_head_half() -> None:
    gen = torch.Generator().manual_seed(0)
    logits, aux = torch.randn(2, 11, 5, 6, generator=gen), torch.randn(2, 11, 5, 6, generator=gen)
    y = torch.randint(0, 11, (2, 5, 6), generator=gen)
    y[0, :2] = IGNORE_INDEX
    kept = y != IGNORE_INDEX
    flat, aux_flat = logits.permute(0, 2, 3, 1)[kept], aux.permute(0, 2, 3, 1)[kept]  # the labelled pixels only
    loss, main_logits = classification_loss(logits, y, label_smoothing=0.0, aux_weight=0.5, ignore_index=IGNORE_INDEX)
    assert main_logits is logits and loss == pytest.approx(F.cross_entropy(flat, y[kept]).item(), abs=1e-6)
    with_aux, _ = classification_loss(
        LogitsWithAux(logits, (aux,)), y, label_smoothing=0.0, aux_weight=0.5, ignore_index=IGNORE_INDEX
    )
    reference = F.cross_entropy(flat, y[kept]) + 0.5 * F.cross_entropy(aux_flat, y[kept])
    assert with_aux.item() == pytest.approx(reference.item(), abs=1e-6)


def test_joint_augmentation_moves_each_mask_with_its_image() -> None:
    # the "mask" is a function of the image: only the same crop and mirror keep it so
    x = torch.randint(0, 256, (32, 1, 9, 9), dtype=torch.uint8)
    y = (x[:, 0] > 127).to(torch.uint8)
    gen = torch.Generator().manual_seed(0)
    xa, ya = joint_crop_flip([x, y], [0, IGNORE_INDEX], pad=3, flip=True, gen=gen)
    labelled = ya != IGNORE_INDEX
    assert torch.equal(ya[labelled], (xa[:, 0] > 127).to(torch.uint8)[labelled])
    assert torch.equal(xa[:, 0][~labelled], torch.zeros_like(xa[:, 0][~labelled]))  # the border gained, both
    assert (~labelled).sum() > 0 and not torch.equal(xa, x)  # it did crop and flip
    # and in the loader: a canvas pixel is a digit's stroke exactly where it is inked (INK), after the shift
    data = few_canvases({"train": 17, "val": 2, "test": 2})
    loader = make_loader(data, "train", data.pipeline(min_size=1), batch_size=8, seed=3)
    batches = list(loader.batches(epoch=1))
    assert len(loader) == len(batches) == 2 and [len(b[0]) for b in batches] == [8, 8]  # the one left is dropped
    for x, y, sizes in batches:
        ink = data.pipeline(min_size=1).denormalize(x)[:, 0] >= seg.INK
        kept = y != IGNORE_INDEX
        assert (~kept).any() and torch.equal(ink[kept], (y > 0)[kept]) and (sizes[~kept] == 0).all()
    assert len(make_loader(data, "val", data.pipeline(), batch_size=1)) == 2  # evaluation keeps every image


def test_pixel_totals_add_over_batches_and_round_trip_through_a_tensor() -> None:
    data = few_canvases({"train": 2, "val": 2, "test": 6})
    model = build_model("fcn_cifar_resnet20", {}).eval()
    loader = make_loader(data, "test", data.pipeline(min_size=1), batch_size=4)
    t = evaluate_pixels(model, loader.batches(), device=torch.device("cpu"), num_classes=11,
                        bucket_names=data.size_buckets, ignore_index=IGNORE_INDEX)  # fmt: skip
    x, y, sizes = (torch.cat(parts) for parts in zip(*loader.batches(), strict=True))
    with torch.no_grad():
        pred = model(x).argmax(1)
    assert torch.equal(t.matrix, confusion_matrix(pred, y, 11, ignore_index=IGNORE_INDEX))
    assert torch.equal(t.buckets[0], confusion_matrix(pred, y, 11, ignore_index=IGNORE_INDEX, where=sizes == 1))
    again = PixelTotals.from_tensor(t.as_tensor(), 11, 2)
    assert torch.equal(again.matrix, t.matrix) and torch.equal(again.buckets, t.buckets)
    assert again.scores(data.classes, data.size_buckets)["loss"] == pytest.approx(t.loss_sum / int(t.matrix.sum()))


def test_a_model_and_data_of_different_tasks_are_refused(tmp_path: Path, small_seg: None) -> None:
    with pytest.raises(ConfigError, match=r"predicts a label per pixel.*train it on a segmentation data set"):
        fit(TrainConfig(model="fcn_cifar_resnet20", data="mnist5k", out_dir=str(tmp_path), progress=False))
    with pytest.raises(ConfigError, match=r"has a label per pixel.*train a segmentation model"):
        fit(TrainConfig(model="cifar_resnet20", data="mnist5k-seg", out_dir=str(tmp_path), progress=False))
    with pytest.raises(DataError, match="segmentation data set: classes and train_per_class"):
        fit(TrainConfig(model="fcn_cifar_resnet20", data="mnist5k-seg", train_per_class=3, out_dir=str(tmp_path)))
    assert not any(tmp_path.iterdir())  # refused before a run folder was made


def test_ledger_and_metrics_show_iou_in_percent() -> None:
    comparison = {"metric": "test_small_iou", "direction": "higher", "better": "hdc", "worse": "grid",
                  "better_mean": 0.4567, "worse_mean": 0.3, "p_expected": 0.01}  # fmt: skip
    assert _measured({"comparisons": [comparison]}) == "hdc 45.7% vs grid 30% (test_small_iou, expected >: p = 0.01)"


def test_an_experiment_compares_segmentation_runs_by_iou(small_seg: None, tmp_path: Path) -> None:
    spec = spec_from_dict({
        "name": "gridding", "data": "mnist5k-seg", "model": "fcn_cifar_resnet20", "seeds": [0, 1],
        "grid": {"dilations": [[1, 1, 1], [2, 2, 2]]}, "recipe": {"epochs": 1, "batch_size": 8},
        "expect": [{"better": "dilations=[1, 1, 1]", "worse": "dilations=[2, 2, 2]", "metric": "test_small_iou"}],
    })  # fmt: skip
    assert spec.expect[0].direction == "higher"
    result = run_experiment(spec, tmp_path, jobs=1, log=lambda _s: None)
    for r in result.records:
        saved = json.loads((Path(r.folder) / "results.json").read_text())
        assert r.metrics["test_miou"] == saved["test"]["final"]["test_miou"]
        assert r.metrics["best_val_miou"] == saved["best_val_miou"] and "train_error" not in r.metrics
    summary = (tmp_path / "summary.md").read_text()
    assert "test small iou %" in summary and "Mean IoUs" in summary


def test_torchrun_two_processes_sum_the_confusion_matrices_over_the_ranks(tmp_path: Path) -> None:
    """Under DDP each rank scores its shard of the test split; the summed matrices must give the IoU that one
    process measures on the whole split with the same weights (cnnlab eval of the run)."""
    import os
    import subprocess
    import sys

    from tests.train_fixtures import CHILD_ENV

    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    if not os.path.exists(torchrun):
        pytest.skip("no torchrun next to this Python")
    folder = write_squares(tmp_path / "squares", 20)  # 4 test images: two per rank
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "cnnlab", "train", "--model",
           "fcn_cifar_resnet20", "--data", f"segfolder:{folder}", "--image-size", "16", "--epochs", "1",
           "--batch-size", "4", "--out-dir", str(tmp_path / "runs"), "--run-name", "r", "--no-progress",
           "--device", "cpu"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=CHILD_ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "weights identical on all 2 ranks" in proc.stdout
    saved = json.loads((tmp_path / "runs" / "r" / "results.json").read_text())
    from cnnlab.train.checkpoint import LAST
    from cnnlab.train.predict import input_pipeline, model_from_checkpoint

    model, meta = model_from_checkpoint(tmp_path / "runs" / "r", prefer=LAST)
    data = load_any(f"segfolder:{folder}")
    totals = evaluate_pixels(
        model, make_loader(data, "test", input_pipeline(meta), batch_size=4).batches(), device=torch.device("cpu"),
        num_classes=data.num_classes, ignore_index=IGNORE_INDEX,
    )  # fmt: skip
    assert totals.matrix.sum() > 4 * 16 * 16 - 8  # the whole split (all but its ignored corner pixels)
    scores = totals.scores(data.classes, ())
    assert saved["test"]["final"]["test_miou"] == pytest.approx(scores["miou"], abs=1e-6)
    assert saved["test"]["final"]["test_acc"] == pytest.approx(scores["acc"], abs=1e-6)
