"""A run folder has one writer and keeps what was written: the lock, a finished run that is not overwritten by
accident, metrics written once per epoch however often a run resumes, stale temporary files removed."""

from __future__ import annotations

import csv
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.errors import ConfigError, TrainingError
from cnnlab.train import fit
from cnnlab.train.runfolder import RunLock
from tests.train_fixtures import CHILD_ENV, TINY_FLAGS, StopAt, tiny_config, write_mnist

QUIET = {"log": lambda _s: None}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture
def finished(data: Path, tmp_path: Path) -> Path:
    """A run folder of a finished 2-epoch run."""
    return fit(tiny_config(data, tmp_path, run_name="r"), **QUIET).run_dir


def cli_args(data: Path, out: Path, *more: str) -> list[str]:
    return ["train", *TINY_FLAGS, "--data", "mnist", "--data-dir", str(data), "--epochs", "2", "--batch-size", "16",
            "--no-progress", "--out-dir", str(out), *more]  # fmt: skip


@pytest.fixture
def holder(finished: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the lock of ``finished`` (as a run writing it would) until it is killed."""
    code = "import sys, time; from pathlib import Path; from cnnlab.train.runfolder import RunLock; "
    code += "lock = RunLock(Path(sys.argv[1])); print('locked', flush=True); time.sleep(120)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(finished)], stdout=subprocess.PIPE, text=True, env=CHILD_ENV
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    yield proc
    proc.kill()
    proc.wait()


def test_a_locked_folder_is_refused_with_the_writer_named_and_freed_when_it_dies(
    finished: Path, data: Path, holder: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]
) -> None:
    who = rf"being written by another run: pid {holder.pid} on {socket.gethostname()}, since \d{{4}}-\d\d-\d\d "
    with pytest.raises(TrainingError, match=who):
        fit(tiny_config(data, finished.parent, run_name="r", resume=str(finished)), **QUIET)
    assert main(cli_args(data, finished.parent, "--run-name", "r", "--overwrite")) == 2
    err = capsys.readouterr().err
    assert f"pid {holder.pid}" in err and "Traceback" not in err
    assert (finished / "last.pt").is_file() and (finished / "metrics.csv").is_file()  # --overwrite deleted nothing
    holder.send_signal(signal.SIGKILL)  # the OS releases its lock: the stale lock blocks no one
    holder.wait()
    resumed = fit(tiny_config(data, finished.parent, run_name="r", resume=str(finished), epochs=2), **QUIET)
    assert [m.epoch for m in resumed.history] == [1, 2]


def test_the_same_process_cannot_write_one_folder_twice(finished: Path) -> None:
    with RunLock(finished), pytest.raises(TrainingError, match="being written by another run in this process"):
        RunLock(finished)
    with RunLock(finished):  # released on exit
        pass


def test_a_finished_run_is_not_overwritten_unless_asked(
    finished: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (finished / "best.pt").read_bytes()
    assert main(cli_args(data, finished.parent, "--run-name", "r")) == 2
    err = capsys.readouterr().err
    assert f"the run folder {str(finished)!r} already holds a run (last.pt, best.pt, metrics.csv" in err
    assert "continue it with --resume" in err and "--overwrite" in err and "Traceback" not in err
    assert (finished / "best.pt").read_bytes() == before
    with pytest.raises(ConfigError, match="already holds a run"):
        fit(tiny_config(data, finished.parent, run_name="r"), **QUIET)

    (finished / "notes.txt").write_text("mine")
    assert main(cli_args(data, finished.parent, "--run-name", "r", "--overwrite", "--epochs", "1")) == 0
    assert "cleared in" in capsys.readouterr().out
    assert [r["epoch"] for r in csv.DictReader((finished / "metrics.csv").open())] == ["1"]
    assert len(list((finished / "tb").iterdir())) == 1  # the old run's events are gone
    assert (finished / "notes.txt").read_text() == "mine"  # only a run's own files are deleted


def test_new_names_never_collide(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnlab.train import trainer

    monkeypatch.setattr(trainer.time, "strftime", lambda _fmt: "20260101-120000")
    runs = [fit(tiny_config(data, tmp_path, epochs=1), **QUIET).run_dir for _ in range(2)]
    assert [p.name for p in runs] == ["cifar_resnet20-mnist-20260101-120000", "cifar_resnet20-mnist-20260101-120000-2"]


def test_a_twice_resumed_run_logs_each_epoch_once_and_stale_temporaries_go(data: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(data, tmp_path, run_name="r", epochs=3)
    run = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, callbacks=[StopAt(5)], **QUIET)  # in epoch 2
    with (run / "metrics.csv").open("a") as f:  # a row written after the checkpoint by a process then killed
        f.write("2,9,9,9,9,9,9,9\n")
    stale = [run / ".last.pt.k2j4x8q1.tmp", run / ".metrics.csv.a1b2c3d4.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    (run / ".keep").write_text("not ours")
    with pytest.raises(KeyboardInterrupt):
        fit(cfg.replace(resume=str(run)), callbacks=[StopAt(9)], **QUIET)  # in epoch 3
    assert not any(p.exists() for p in stale) and (run / ".keep").exists()
    fit(cfg.replace(resume=str(run)), **QUIET)
    assert [r["epoch"] for r in csv.DictReader((run / "metrics.csv").open())] == ["1", "2", "3"]
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    for tag in ("train/loss", "train/acc", "val/acc", "lr"):
        assert [s.step for s in events.Scalars(tag)] == [1, 2, 3], tag
    assert not list(run.glob(".*.tmp"))
