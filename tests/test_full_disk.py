"""A full disk while a run writes: one clear error that names the folder and its free space, the last good
checkpoint intact, no temporary file left, and the run resumable once there is space. On a real (tiny) tmpfs
where one can be mounted, and always through an ``os.write`` that fails as a full disk does."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.errors import TrainingError
from cnnlab.train import Callback, fit
from cnnlab.train.checkpoint import load_checkpoint
from tests.train_fixtures import TINY_FLAGS, tiny_config, write_mnist

QUIET = {"log": lambda _s: None}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mnist(tmp_path_factory.mktemp("mnist"))


class FillDiskAfter(Callback):
    """At the end of epoch 1 (after its checkpoints), make the disk full: ``fill()`` does it."""

    def __init__(self, fill: object) -> None:
        self.fill = fill

    def on_epoch_end(self, epoch: int, metrics: object, model: object) -> None:
        if epoch == 1:
            self.fill()  # type: ignore[operator]


def assert_epoch_1_survived(run: Path, error: pytest.ExceptionInfo[TrainingError]) -> None:
    message = str(error.value)
    assert message.startswith(f"the disk holding {str(run)!r} is full (") and " free): " in message
    assert "could not be written (No space left on device); the previous " in message
    assert f"is intact; free some space, then continue with --resume {run}" in message
    assert error.value.__cause__ is None and error.value.__suppress_context__  # one message, no chained traceback
    assert load_checkpoint(run)["epoch"] == 2  # epoch 1's last.pt, whole and checked against its checksum
    assert not list(run.glob(".*.tmp"))


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, or a skip where this process may not mount one (not root, or no CAP_SYS_ADMIN)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    cmd = ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> None:
    """Write a file to ``folder`` until its disk is full."""
    with (folder / "filler").open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC


def test_a_real_full_disk_stops_the_run_and_it_resumes_once_there_is_space(data: Path, tiny_disk: Path) -> None:
    run = tiny_disk / "r"
    cfg = tiny_config(data, tiny_disk, run_name="r")
    with pytest.raises(TrainingError) as error:
        fit(cfg, callbacks=[FillDiskAfter(lambda: fill(tiny_disk))], **QUIET)
    assert_epoch_1_survived(run, error)
    (tiny_disk / "filler").unlink()
    resumed = fit(cfg.replace(resume=str(run)), **QUIET)
    assert [m.epoch for m in resumed.history] == [1, 2] and load_checkpoint(run)["epoch"] == 3


def full_disk_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, ``os.write`` fails as on a full disk."""

    def write(_fd: int, _data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write)


def test_a_write_that_fails_with_enospc_stops_the_run_with_one_message(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "r"
    with pytest.raises(TrainingError) as error:
        fit(tiny_config(data, tmp_path, run_name="r"), callbacks=[FillDiskAfter(lambda: full_disk_writes(monkeypatch))],
            **QUIET)  # fmt: skip
    assert_epoch_1_survived(run, error)


def test_the_cli_reports_a_full_disk_at_the_start_as_a_usage_error(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    full_disk_writes(monkeypatch)
    args = ["train", *TINY_FLAGS, "--data", "mnist", "--data-dir", str(data), "--epochs", "1", "--no-progress",
            "--out-dir", str(tmp_path), "--run-name", "r"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cnnlab: error: the disk holding {str(tmp_path / 'r')!r} is full (")
    assert "config.yaml could not be written" in err and "start the run again" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [".lock"]
