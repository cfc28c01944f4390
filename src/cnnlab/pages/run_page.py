"""The report of one training run, read from its folder: the config, the curves, the test results of the final
and the best-on-validation weights, the confusion matrix and per-class accuracy of the best checkpoint, the test
images it gets wrong, why it decides as it does (Grad-CAM of a few test images; for a network with deformable
convs, where one unit samples the image), and the timings.

A damaged ``config.yaml`` or ``metrics.csv`` is replaced by what the run's checkpoint records, read as ``--resume``
reads it; a damaged ``results.json`` leaves the test results out. The page and a warning line say which file was
damaged and what was shown instead."""

from __future__ import annotations

import csv
import io
import itertools
import json
import sys
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.analysis.cam import gradcam, overlay
from cnnlab.analysis.sampling import deformable_layers, draw_sampling, sampling_points
from cnnlab.data import SegmentationDataset, load_any, make_loader
from cnnlab.errors import CnnlabError
from cnnlab.pages.page import Page, number_cell, plot_img, png_img, table
from cnnlab.plotting import plot_confusion, plot_masks
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.config import load_yaml
from cnnlab.train.engine import confusion_matrix
from cnnlab.train.plots import plot_curves
from cnnlab.train.predict import input_pipeline, iou_table, model_from_checkpoint, sample_masks, score_text
from cnnlab.train.runlog import EpochMetrics

MAX_WRONG = 48  # misclassified test images shown
EXPLAINED = 6  # test images whose Grad-CAM is shown, one of each of the first classes
SAMPLED = 2  # of those, the ones whose deformable sampling points are drawn (deformable networks)


def is_run_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.yaml").exists() and (path / "metrics.csv").exists()


def _cell(hint: str, text: str | None) -> int | float | None:
    """A metrics.csv cell as its field's type; empty only where the field may be None (no validation)."""
    if text == "" and "None" in hint:
        return None
    if text is None:
        raise ValueError("a row with fewer cells than the header")
    return int(text) if hint == "int" else float(text)


def read_history(run_dir: Path) -> list[EpochMetrics]:
    """``metrics.csv`` as :class:`EpochMetrics` (empty cells: no validation that epoch); a ValueError or
    TypeError when a cell, a column or a row does not fit."""
    hints = EpochMetrics.__annotations__
    with (run_dir / "metrics.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    unknown = [c for c in reader.fieldnames or [] if c not in hints]
    if unknown:
        raise ValueError(f"unknown column(s) {', '.join(map(repr, unknown))}")
    return [EpochMetrics(**{k: _cell(hints[k], v) for k, v in row.items()}) for row in rows]


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class _RunFiles:
    """The run's config, history and results, each from its file or, where the file is damaged, from what the
    checkpoint records (as ``--resume`` reads them); ``damaged`` says what was replaced and why."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.damaged = run_dir, []
        self._state: dict[str, Any] | None = None
        try:
            self.config: dict[str, Any] = load_yaml(run_dir / "config.yaml")
        except CnnlabError as e:
            self.config = self._recorded("config.yaml", e, lambda state: state["config"], {})
        try:
            self.history = read_history(run_dir)
        except (ValueError, TypeError, KeyError, csv.Error) as e:  # UnicodeDecodeError is a ValueError
            recorded = self._recorded("metrics.csv", e, lambda state: state["history"], [])
            self.history = [EpochMetrics(**m) for m in recorded]
        self.results = self._results(run_dir / "results.json")

    def _recorded(self, name: str, error: Exception, pick: Callable[[dict[str, Any]], Any], empty: Any) -> Any:
        why = _one_line(error)
        if self._state is None:
            try:
                self._state = load_checkpoint(self.run_dir)
            except CnnlabError as e:
                self.damaged.append(f"{self.run_dir / name} is damaged ({why}), and no checkpoint records it: {e}")
                return empty
        self.damaged.append(f"{self.run_dir / name} is damaged ({why}); shown from {self._state['path']} instead")
        return pick(self._state)

    def _results(self, path: Path) -> dict[str, Any]:
        if not path.exists():
            return {}
        try:
            results = json.loads(path.read_bytes())
            _check_results(results)
        except (ValueError, TypeError) as e:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            left_out = "its test results are left out (`cnnlab eval` measures them)"
            self.damaged.append(f"{path} is damaged ({_one_line(e)}): {left_out}")
            return {}
        return results


def _check_results(results: Any) -> None:
    """A ValueError unless ``results`` has the shape of a results.json in what this page reads of it."""
    number = (int, float)
    tests = (results.get("test") or {}) if isinstance(results, dict) else None
    if not isinstance(tests, dict) or not all(
        isinstance(t, dict) and all(isinstance(t.get(k), number) for k in ("epoch", "test_acc", "test_loss"))
        for t in tests.values()
    ):
        raise ValueError("its test entry is not a mapping of weights to epoch, test_acc and test_loss")
    if not isinstance(results.get("splits", {}), dict) or not all(
        isinstance(n, int) for n in results.get("splits", {}).values()
    ):
        raise ValueError("its splits entry is not a mapping of split names to counts")
    if not isinstance(results.get("wall_s", 0), number):
        raise ValueError("its wall_s is not a number")


def run_page(
    run_dir: str | Path, *, data_dir: str | None = None, batch_size: int = 256, warn: Callable[[str], None] = _warn
) -> Page:
    """The page of the run in ``run_dir``; ``warn`` is told of each damaged file (see the module docstring)."""
    run_dir = Path(run_dir)
    files = _RunFiles(run_dir)
    config, history, results = files.config, files.history, files.results
    model, data = config.get("model", "?"), results.get("data", config.get("data", "?"))
    best = (results.get("test") or {}).get("best") or (results.get("test") or {}).get("final")
    acc = f"; test accuracy {best['test_acc']:.4f} (best on validation)" if best else ""
    page = Page(f"run {run_dir.name}: {model} on {data}", f"{len(history)} epochs{acc}; {run_dir.resolve()}")
    for message in files.damaged:
        warn(message)
    if files.damaged:
        page.add("Damaged files", "".join(f'<p class="note">{escape(m)}</p>' for m in files.damaged))
    page.add("Test results", _test_table(results), note=_test_note(results))
    if history:
        curves = plot_img(lambda p: plot_curves(history, p), "training curves")
        page.add("Curves", curves, note="From metrics.csv: loss and accuracy on the training and validation splits.")
    evaluation, why = _evaluation(run_dir, data_dir, batch_size)
    page.add("Best checkpoint on the test split", evaluation)
    if why:
        page.add("Why: Grad-CAM", why, note=WHY_NOTE)
    if history:
        page.add("Timings", _timings(history, results))
    page.add("Config", table(["key", "value"], [[k, json.dumps(v, default=str) if not isinstance(v, str) else v]
                                               for k, v in config.items()]))  # fmt: skip
    return page


def _test_table(results: dict[str, Any]) -> str:
    test = results.get("test") or {}
    if not test:
        return '<p class="note">no results.json test entry (the run did not finish, or its data has no test split)</p>'
    rows = [[name, t["epoch"], t.get("val_acc"), t["test_acc"], t["test_loss"]] for name, t in test.items()]
    headers = ["weights", "epoch", "val acc", "test acc", "test loss"]
    if any("test_miou" in t for t in test.values()):  # segmentation: accuracies are per pixel
        keys = ("test_miou", "test_small_iou", "test_large_iou")
        rows = [[*row, *(t.get(k) for k in keys)] for row, t in zip(rows, test.values(), strict=True)]
        headers += ["test mIoU", "small-object IoU", "large-object IoU"]
    return table(headers, rows, numeric=[False, *[True] * (len(headers) - 1)])


def _test_note(results: dict[str, Any]) -> str:
    if not results:
        return ""
    splits = ", ".join(f"{k} {v:,}" for k, v in results.get("splits", {}).items())
    return (
        f"From results.json: the test split ({splits}) evaluated once after training, for the final weights and "
        f"for the best on validation (epoch {results.get('best_epoch')}); wall time {results.get('wall_s', 0):.1f} s."
    )


WHY_NOTE = (
    "Grad-CAM (Selvaraju et al. 2017): the regions of each image that raise the score of the predicted class, from "
    "the gradients of that score at the last stage's feature maps (red: most). For a network with deformable convs, "
    "the points where one unit of the last deformable layer samples the image, followed back through every "
    "deformable layer (Dai et al. 2017, Fig. 5 and 7; green: the unit)."
)


def _evaluation(run_dir: Path, data_dir: str | None, batch_size: int) -> tuple[str, str]:
    """The best checkpoint's test results (HTML), and its Grad-CAM pictures (HTML; empty for segmentation)."""
    try:
        model, meta = model_from_checkpoint(run_dir)
        data = load_any(meta["data"], data_dir=data_dir or meta.get("data_dir", "data"),
                        val_fraction=meta["val_fraction"])  # fmt: skip
        pipeline = input_pipeline(meta)
        loader = make_loader(data, "test", pipeline, batch_size=batch_size)
    except (CnnlabError, OSError, KeyError) as e:
        return f'<p class="note">not evaluated: {type(e).__name__}: {e}</p>', ""
    if isinstance(data, SegmentationDataset):
        return _segmentation(model, meta, data, loader), ""
    preds, labels = [], []
    wrong: dict[int, list[tuple[torch.Tensor, int, int, float]]] = {}  # by true class, each up to MAX_WRONG
    firsts: dict[int, torch.Tensor] = {}  # the first test image of each class, for Grad-CAM
    with torch.no_grad():
        for x, y in loader.batches():
            for i, c in enumerate(y.tolist()):
                if c not in firsts and len(firsts) < EXPLAINED:
                    firsts[c] = x[i]
            conf, pred = model(x).softmax(1).max(1)
            for i in torch.nonzero(pred != y).flatten().tolist():
                seen = wrong.setdefault(int(y[i]), [])
                if len(seen) < MAX_WRONG:
                    seen.append((x[i], int(y[i]), int(pred[i]), float(conf[i])))
            preds.append(pred)
            labels.append(y)
    pred, y = torch.cat(preds), torch.cat(labels)
    classes = meta["classes"]
    matrix = confusion_matrix(pred, y, len(classes))
    per_class = matrix.diag().double() / matrix.sum(1).clamp(min=1)
    acc = float((pred == y).double().mean())
    title = f"{meta['model']} on {data.name}: best checkpoint, test split"
    confusion = plot_img(lambda p: plot_confusion(matrix, classes, p, title=title), "confusion matrix", css="square")
    rows = [[c, int(matrix[i].sum()), int(matrix[i, i]), float(per_class[i])] for i, c in enumerate(classes)]
    per_class_table = table(["class", "images", "correct", "accuracy"], rows, numeric=[False, True, True, True])
    shown = [w for group in itertools.zip_longest(*wrong.values()) for w in group if w is not None][:MAX_WRONG]
    grid = "".join(
        f"<figure>{png_img(_image_png(img, pipeline), f'true {classes[t]}, predicted {classes[p]}', css='')}"
        f"<figcaption>true {escape(classes[t])}<br>pred {escape(classes[p])} ({c:.2f})</figcaption></figure>"
        for img, t, p, c in shown
    )
    count = f"{len(shown)} of {int((pred != y).sum())}, taking the classes in turn" if shown else "none"
    return (
        f"<p>{escape(str(meta['path']))}: test accuracy {acc:.4f} on {len(y):,} images; shown as they were read, "
        f'before normalisation.</p><div class="row">{confusion}{per_class_table}</div>'
        f'<h3>Misclassified test images ({count})</h3><div class="grid">{grid}</div>'
    ), _why(model, meta, pipeline, firsts)


def _why(model: torch.nn.Module, meta: dict[str, Any], pipeline: Any, firsts: dict[int, torch.Tensor]) -> str:
    """The Grad-CAM of the predicted class on the first test image of each of the first classes, and for a
    network with deformable convs the sampling points of its strongest unit on the first two."""
    if not firsts:
        return ""
    classes, labels = meta["classes"], list(firsts)
    x = torch.stack([firsts[c] for c in labels])
    cam = gradcam(model, x)
    heat = cam.upsampled(tuple(x.shape[-2:])).numpy()
    images = pipeline.denormalize(x).permute(0, 2, 3, 1).numpy()
    figures = []
    for k, c in enumerate(labels):
        grey = images[k][..., 0] if images.shape[-1] == 1 else images[k]
        png = _array_png(overlay(grey, heat[k]))
        predicted = classes[int(cam.target[k])]
        figures.append(
            f"<figure>{png_img(png, f'Grad-CAM of {predicted}', css='')}<figcaption>true {escape(classes[c])}<br>"
            f"Grad-CAM of {escape(predicted)} ({float(cam.probs[k]):.2f})</figcaption></figure>"
        )
    html = f'<p>layer {escape(cam.layer)}</p><div class="grid">{"".join(figures)}</div>'
    if deformable_layers(model):
        drawn = []
        for k in range(min(SAMPLED, len(labels))):
            sampling = sampling_points(model, x[k : k + 1])
            grey = images[k][..., 0] if images.shape[-1] == 1 else images[k]
            title = f"{len(sampling.levels[-1])} points of unit {sampling.cell}, {len(sampling.layers)} layers"
            drawn.append(plot_img(lambda p, s=sampling, g=grey, t=title: draw_sampling(g, s, p, title=t),
                                  "deformable sampling points"))  # fmt: skip
        html += f'<h3>Deformable sampling points</h3><div class="row">{"".join(drawn)}</div>'
    return html


def _array_png(pixels: np.ndarray, *, least: int = 96) -> bytes:
    """An H x W (x 3) uint8 picture as PNG bytes, enlarged (nearest) to at least ``least`` pixels wide."""
    from PIL import Image

    image = Image.fromarray(pixels)
    scale = max(1, -(-least // image.width))
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _segmentation(model: torch.nn.Module, meta: dict[str, Any], data: SegmentationDataset, loader: Any) -> str:
    """The IoU of each class and the masks of a few test images beside their true masks."""
    cpu = torch.device("cpu")
    scores, rows = iou_table(model, data, loader, device=cpu)
    per_class = table(["class", "pixels", "IoU"], rows, numeric=[False, True, True])
    images, y, pred = sample_masks(model, data, "test", input_pipeline(meta), 6, device=cpu)
    title = f"{meta['model']} on {data.name}: best checkpoint, test split"
    masks = plot_img(lambda p: plot_masks(images, y, pred, data.classes, p, title=title), "masks")
    sizes = "".join(f", {b} objects {score_text(scores[f'{b}_iou'])}" for b in data.size_buckets)
    return (
        f"<p>{escape(str(meta['path']))}: test mean IoU {scores['miou']:.4f}{sizes}, pixel accuracy "
        f'{scores["acc"]:.4f}.</p><div class="row">{masks}{per_class}</div>'
    )


def _image_png(x: torch.Tensor, pipeline: Any) -> bytes:
    """A network input shown as the image it was: un-normalised with the pipeline's mean and std."""
    from PIL import Image

    pixels = pipeline.denormalize(x[None])[0].permute(1, 2, 0).numpy()
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else np.ascontiguousarray(pixels[..., :3]))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _timings(history: list[EpochMetrics], results: dict[str, Any]) -> str:
    rows = [[m.epoch, number_cell(round(m.epoch_s, 2)), number_cell(round(m.images_per_s, 1)), m.lr] for m in history]
    total = sum(m.epoch_s for m in history)
    mean_rate = sum(m.images_per_s for m in history) / len(history)
    summary = (
        f"<p>{len(history)} epochs in {total:.1f} s ({total / len(history):.1f} s each); {mean_rate:,.0f} training "
        f"images/s on average; wall time {results.get('wall_s', total):.1f} s with data loading and testing.</p>"
    )
    return summary + table(["epoch", "epoch s", "images/s", "lr"], rows, numeric=[True, True, True, True])
