"""A stopped and resumed run ends bit-identical to one that ran straight through: stopped by a callback or by a
real SIGTERM, on tensor data and on image files read by 2 loader processes (with dropout, so the RNG state
matters), and under torchrun with 2 processes where one rank alone asks to stop."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnlab.cli import main
from cnnlab.train import fit
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.runlog import read_metrics
from tests.train_fixtures import (
    CHILD_ENV,
    TINY_DROPOUT,
    StopAt,
    assert_same_weights,
    folder_config,
    metrics,
    tiny_config,
    write_image_folder,
    write_mnist,
)

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
TIMINGS = ("images_per_s", "epoch_s")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """36 8x8 images of 3 classes: 27 train (7 batches of 4), 3 val, 6 test."""
    return write_image_folder(tmp_path_factory.mktemp("imgs"), per_class=12, size=8)


def logged(run: Path) -> list[dict[str, str]]:
    """metrics.csv without the timings."""
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in read_metrics(run)]


def test_tensor_data_stopped_mid_epoch_resumes_exactly(tmp_path: Path) -> None:
    data = write_mnist(tmp_path / "data")
    straight = fit(tiny_config(data, tmp_path, run_name="straight"), log=lambda _s: None)
    cfg = tiny_config(data, tmp_path, run_name="halves")
    with pytest.raises(KeyboardInterrupt):  # 4 steps per epoch: stop in the middle of epoch 2
        fit(cfg, callbacks=[StopAt(5)], log=lambda _s: None)
    state = load_checkpoint(tmp_path / "halves")
    assert (state["epoch"], state["step"], len(state["partial"])) == (2, 2, 1)
    resumed = fit(cfg.replace(resume=str(tmp_path / "halves")), log=lambda _s: None)
    assert_same_weights(straight.model.state_dict(), resumed.model.state_dict())
    assert metrics(resumed) == metrics(straight)
    assert logged(tmp_path / "halves") == logged(tmp_path / "straight")


def test_image_files_with_two_loader_processes_and_dropout_resume_exactly(folder: Path, tmp_path: Path) -> None:
    straight = fit(folder_config(folder, tmp_path, run_name="straight"), log=lambda _s: None)
    cfg = folder_config(folder, tmp_path, run_name="halves")
    with pytest.raises(KeyboardInterrupt):  # 7 steps per epoch: stop after step 3 of epoch 2
        fit(cfg, callbacks=[StopAt(9)], log=lambda _s: None)
    assert (load_checkpoint(tmp_path / "halves")["step"]) == 3
    resumed = fit(cfg.replace(resume=str(tmp_path / "halves"), workers=1), log=lambda _s: None)
    assert_same_weights(straight.model.state_dict(), resumed.model.state_dict())
    assert metrics(resumed) == metrics(straight) and resumed.test == straight.test


@pytest.mark.slow
def test_sigterm_to_the_cli_saves_last_pt_and_the_resume_is_exact(folder: Path, tmp_path: Path) -> None:
    # A constant learning rate: the run may be told to stop at any epoch E and resumed with --epochs E
    recipe = ["--model", TINY_DROPOUT["model"], "--model-kwargs", json.dumps(TINY_DROPOUT["model_kwargs"]),
              "--data", f"imagefolder:{folder}", "--image-size", "8", "--batch-size", "4", "--workers", "2",
              "--schedule", "constant", "--warmup-epochs", "0", "--device", "cpu", "--no-progress"]  # fmt: skip
    cmd = [sys.executable, "-m", "cnnlab", "train", *recipe, "--epochs", "10000", "--out-dir", str(tmp_path),
           "--run-name", "r"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CHILD_ENV)
    assert proc.stdout is not None
    for line in proc.stdout:  # once the first epoch is done
        if line.startswith("epoch"):
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    stopped = re.search(r"interrupted at epoch (\d+), step (\d+)", out)
    assert stopped and int(stopped[2]) >= 1, out  # at a step boundary inside an epoch
    epochs = int(stopped[1])
    assert main(["train", "--resume", str(tmp_path / "r"), "--epochs", str(epochs)]) == 0
    straight = fit(
        folder_config(folder, tmp_path, run_name="straight", epochs=epochs, schedule="constant", warmup_epochs=0.0),
        log=lambda _s: None,
    )
    assert_same_weights(straight.model.state_dict(), load_checkpoint(tmp_path / "r")["model"])
    assert logged(tmp_path / "r") == logged(tmp_path / "straight")


def _ddp_child(out: Path, folder: Path) -> None:
    """Under torchrun: a straight run, a run that rank 1 alone stops in epoch 2, and its resume."""
    import torch.distributed as dist

    dist.init_process_group("gloo")  # fit() joins this group and leaves it to its owner
    cfg = folder_config(folder, out, workers=0)
    fit(cfg.replace(run_name="straight"))
    try:
        fit(cfg.replace(run_name="halves"), callbacks=[StopAt(5, rank=1)])  # 4 steps per epoch and rank
    except KeyboardInterrupt:
        if dist.get_rank() == 0:
            shutil.copy(out / "halves" / "last.pt", out / "interrupted.pt")
    fit(cfg.replace(run_name="halves", resume=str(out / "halves")))
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(TORCHRUN), reason="no torchrun next to this Python")
def test_ddp_run_stopped_by_one_rank_resumes_with_the_same_epoch_totals_and_weights(
    folder: Path, tmp_path: Path
) -> None:
    cmd = [TORCHRUN, "--standalone", "--nproc-per-node", "2", __file__, str(tmp_path), str(folder)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=CHILD_ENV)
    except subprocess.TimeoutExpired as e:  # the ranks waiting for each other: show how far they got
        raise AssertionError(f"the ranks hung; rank 0 printed:\n{(e.stdout or b'').decode()[-3000:]}") from None
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "interrupted at epoch 2, step 2" in proc.stdout  # rank 0 stopped with rank 1, after the same step
    interrupted = torch.load(tmp_path / "interrupted.pt", weights_only=True)
    assert interrupted["world_size"] == 2 and [p[2:4] for p in interrupted["partial"]] == [[8, 2], [8, 2]]
    assert logged(tmp_path / "halves") == logged(tmp_path / "straight")  # epoch 2's train loss and accuracy too
    assert_same_weights(load_checkpoint(tmp_path / "straight")["model"], load_checkpoint(tmp_path / "halves")["model"])


if __name__ == "__main__":
    _ddp_child(Path(sys.argv[1]), Path(sys.argv[2]))
