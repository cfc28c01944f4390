"""PNG figures of a run: training curves, a confusion matrix, and segmentation masks beside their images
(matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from cnnlab.plotting import label_colours, pyplot, save_figure
from cnnlab.train.runlog import EpochMetrics


def plot_curves(history: Sequence[EpochMetrics], path: Path) -> Path:
    """Loss, accuracy and learning rate per epoch, train and validation side by side."""
    plt = pyplot()
    epochs = [m.epoch for m in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    validated = [m for m in history if m.val_loss is not None]
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "acc", "accuracy")):
        ax.plot(epochs, [getattr(m, f"train_{key}") for m in history], "o-", label="train")
        ax.plot([m.epoch for m in validated], [getattr(m, f"val_{key}") for m in validated], "s-", label="validation")
        ax.set(title=title, xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[2].plot(epochs, [m.lr for m in history], "o-")
    axes[2].set(title="learning rate (end of epoch)", xlabel="epoch")
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


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
    indices) in :func:`~cnnlab.plotting.label_colours`, with a legend of the classes (cream: ignored pixels)."""
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
