"""The one home of cnnlab's plotting helpers: matplotlib, imported on first use with the non-interactive Agg
backend (no display needed), one way to save a figure, the class colours of masks, a heat map with its holes
marked, and the figures of plain arrays that several commands draw (a confusion matrix, masks beside their
images). The figures of one layer's own results are drawn with these where those results live: the analyzer's
in :mod:`cnnlab.analysis.plots`, a run's curves in :mod:`cnnlab.train.plots`, an experiment's in
:mod:`cnnlab.experiments.report`.

May import: nothing from cnnlab.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (imported here, on use: importing cnnlab does not load it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path`` (its folder made if missing), trimmed to its content, and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return path


def label_colours() -> np.ndarray:
    """256 x 3 uint8 RGB colours of class indices: Pascal VOC's palette (the bits of the index spread over the
    high bits of red, green and blue), so that 0 is black and 255, "ignore", is cream (224, 224, 192)."""
    colours = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r, g, b = r | ((c >> 0) & 1) << (7 - j), g | ((c >> 1) & 1) << (7 - j), b | ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours[i] = (r, g, b)
    return colours


def heatmap(ax: Any, values: np.ndarray, *, cmap: str, label: str, zeros: str) -> None:
    """``values`` as an image with a colour bar; exact zeros hatched in red, apart from the low values."""
    from matplotlib import patches

    plt = pyplot()
    masked = np.ma.masked_equal(values, 0)
    colours = plt.get_cmap(cmap).with_extremes(bad="#fecaca")
    image = ax.imshow(masked, cmap=colours, interpolation="nearest")
    ys, xs = np.nonzero(values == 0)
    for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
        ax.add_patch(patches.Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="////", ec="#dc2626", lw=0))
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=label)
    if len(ys):
        hole = patches.Patch(fc="#fecaca", ec="#dc2626", hatch="////", label=f"{zeros} ({len(ys)})")
        ax.legend(handles=[hole], loc="upper right", fontsize=7, framealpha=0.9)


def plot_confusion(matrix: torch.Tensor, classes: Sequence[str], path: Path, *, title: str = "") -> Path:
    """Rows: true class, columns: predicted class, counts in the cells (for up to 20 classes)."""
    plt = pyplot()
    n = len(classes)
    size = min(12, 3 + 0.45 * n)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix.numpy(), cmap="Blues")
    ticks = range(n) if n <= 40 else range(0, n, max(1, n // 20))
    ax.set_xticks(list(ticks), [classes[i] for i in ticks], rotation=90 if n > 10 else 0)
    ax.set_yticks(list(ticks), [classes[i] for i in ticks])
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    if n <= 20:
        peak = matrix.max().item() or 1
        for i in range(n):
            for j in range(n):
                v = int(matrix[i, j])
                ax.text(j, i, str(v), ha="center", va="center", color="white" if v > peak / 2 else "black", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_masks(
    images: torch.Tensor,
    true: torch.Tensor,
    pred: torch.Tensor,
    classes: Sequence[str],
    path: Path,
    *,
    title: str = "",
) -> Path:
    """One row per image: the input (N x C x H x W uint8), its true mask and the predicted one (N x H x W class
    indices) in :func:`label_colours`, with a legend of the classes (cream: ignored pixels)."""
    plt = pyplot()
    colours = label_colours()
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(6.6, 2.2 * n + 0.6), squeeze=False)
    for i in range(n):
        image = images[i].permute(1, 2, 0).numpy()
        panels = (image[..., 0] if image.shape[2] == 1 else image, colours[true[i].numpy()], colours[pred[i].numpy()])
        for ax, panel, name in zip(axes[i], panels, ("input", "true mask", "predicted"), strict=True):
            ax.imshow(panel, cmap="gray" if panel.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
            ax.set_axis_off()
            if i == 0:
                ax.set_title(name)
    from matplotlib.patches import Patch

    handles = [Patch(color=colours[k] / 255, label=c) for k, c in enumerate(classes)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(classes), 6), fontsize=8, frameon=False)
    fig.suptitle(title or "segmentation")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return save_figure(fig, path)
