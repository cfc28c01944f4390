"""PNG figures of a run: its training curves (matplotlib, no display needed). The figures of plain arrays that a
run's evaluation also draws, a confusion matrix and masks beside their images, are in :mod:`cnnlab.plotting`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cnnlab.plotting import pyplot, save_figure
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
