"""What a run leaves behind: ``config.yaml`` (the resolved configuration), ``metrics.csv`` (one row per epoch),
TensorBoard event files (``tb/``), curves and checkpoints; all but the event files are written whole or not at all
(:mod:`cnnlab.train.atomic`). Only rank 0 of a distributed run writes."""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.train.atomic import full_disk_is_an_error, write_atomic
from cnnlab.train.config import TrainConfig, save_yaml


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch: losses are mean cross-entropy per image (with label smoothing for train), accuracies in [0, 1].

    ``val_*`` are measured on the validation split (None in an epoch without validation). The test split is not
    touched during training: :func:`cnnlab.train.fit` evaluates it once at the end (``results.json``).

    Segmentation: losses and accuracies are per labelled pixel (``train_acc`` and ``val_acc`` are pixel
    accuracies), and ``val_miou``, ``val_small_iou`` and ``val_large_iou`` are the validation split's mean IoU
    over all its pixels and over those of its small and of its large objects (None for classification, and
    for a data set without size buckets).
    """

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    lr: float  # at the end of the epoch
    images_per_s: float  # training throughput over the epoch (all ranks)
    epoch_s: float  # wall time of the epoch, evaluation included
    val_miou: float | None = None  # segmentation only, as the three below
    val_small_iou: float | None = None
    val_large_iou: float | None = None


SEGMENTATION_COLUMNS = ["val_miou", "val_small_iou", "val_large_iou"]
COLUMNS = [f.name for f in dataclasses.fields(EpochMetrics) if f.name not in SEGMENTATION_COLUMNS]
"""metrics.csv of a classifier; a segmentation run's adds :data:`SEGMENTATION_COLUMNS`."""


class RunLog:
    """``config.yaml`` at the start; after each epoch, ``metrics.csv`` written again from the whole history (one
    row per epoch, however often the run was resumed) and the epoch's TensorBoard scalars.

    A resumed run starts a TensorBoard session with ``purge_step=1``, which hides every scalar that earlier
    sessions logged (TensorBoard's own rule for a restarted run), and logs the checkpoint's history again: the
    scalars, like the CSV, are those of the epochs in the checkpoint, once each.
    """

    def __init__(
        self,
        run_dir: Path,
        config: TrainConfig,
        history: list[EpochMetrics],
        *,
        tensorboard: bool = True,
        segmentation: bool = False,  # add the IoU columns to metrics.csv
    ) -> None:
        self.run_dir = run_dir
        self.columns = COLUMNS + SEGMENTATION_COLUMNS if segmentation else COLUMNS
        save_yaml(config, run_dir / "config.yaml")
        self.csv_path = run_dir / "metrics.csv"
        self.writer: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            with full_disk_is_an_error(run_dir, "tb/"):
                self.writer = SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=1 if history else None)
                self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in config.to_dict().items()))
        self.record(history, new=len(history))

    def record(self, history: list[EpochMetrics], *, new: int = 1) -> None:
        """Write ``history`` to the CSV and its last ``new`` epochs to TensorBoard."""
        text = io.StringIO(newline="")
        w = csv.DictWriter(text, fieldnames=self.columns, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(dataclasses.asdict(m) for m in history)
        write_atomic(self.csv_path, text.getvalue().encode())
        if self.writer is not None and new:
            with full_disk_is_an_error(self.run_dir, "tb/"):
                for m in history[-new:]:
                    for key, value in dataclasses.asdict(m).items():
                        if key != "epoch" and value is not None:
                            self.writer.add_scalar(key.replace("_", "/", 1), value, m.epoch)
                self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            with full_disk_is_an_error(self.run_dir, "tb/"):
                self.writer.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, str]]:
    with (Path(run_dir) / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))
