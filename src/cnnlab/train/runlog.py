"""What a run leaves behind: ``config.yaml`` (the resolved configuration), ``metrics.csv`` (one row per epoch),
TensorBoard event files (``tb/``), curves and checkpoints. Only rank 0 of a distributed run writes."""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.train.config import TrainConfig, save_yaml


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch: losses are mean cross-entropy per image (with label smoothing for train), accuracies in [0, 1].

    ``val_*`` are measured on the validation split (None in an epoch without validation). The test split is not
    touched during training: :func:`cnnlab.train.fit` evaluates it once at the end (``results.json``).
    """

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    lr: float  # at the end of the epoch
    images_per_s: float  # training throughput over the epoch (all ranks)
    epoch_s: float  # wall time of the epoch, evaluation included


COLUMNS = [f.name for f in dataclasses.fields(EpochMetrics)]


class RunLog:
    """Appends each epoch to the CSV and to TensorBoard."""

    def __init__(self, run_dir: Path, config: TrainConfig, *, tensorboard: bool = True) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(config, run_dir / "config.yaml")
        self.csv_path = run_dir / "metrics.csv"
        self.writer: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir / "tb"))
            self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in config.to_dict().items()))

    def append(self, m: EpochMetrics) -> None:
        fresh = not self.csv_path.exists()
        with self.csv_path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            if fresh:
                w.writeheader()
            w.writerow(dataclasses.asdict(m))
        if self.writer is not None:
            for key, value in dataclasses.asdict(m).items():
                if key != "epoch" and value is not None:
                    self.writer.add_scalar(key.replace("_", "/", 1), value, m.epoch)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, str]]:
    with (Path(run_dir) / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))
