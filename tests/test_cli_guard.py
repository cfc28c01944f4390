"""The guard at the door of ``cnnlab``: an exception that is none of cnnlab's own errors (a bug, here a fault
injected deep inside a command) is one line on stderr, which names the command, the step of cnnlab it came from
and the file that holds its whole traceback, and exit code 1; Ctrl-C keeps exit code 130."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import matplotlib.figure
import pytest
import torch

from cnnlab.cli import main
from cnnlab.data.transforms import InputPipeline
from cnnlab.train import engine, fit
from tests.train_fixtures import TINY_FLAGS, tiny_config, write_mnist


class Injected(Exception):
    """A fault no part of cnnlab expects (none of its handlers catches it)."""


def fault(*_args: object, **_kwargs: object) -> None:
    raise Injected("injected fault\nwith a second line")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("guard")
    data = write_mnist(root / "data")
    return data, fit(tiny_config(data, root / "runs", epochs=1, run_name="r"), log=lambda _s: None).run_dir


Argv = Callable[[Path, Path, Path], list[str]]  # (data, run, tmp) -> the command line


def train(data: Path, _run: Path, tmp: Path) -> list[str]:
    return ["train", *TINY_FLAGS, "--data", "mnist", "--data-dir", str(data), "--epochs", "1", "--no-progress",
            "--out-dir", str(tmp / "out")]  # fmt: skip


CASES: dict[str, tuple[Argv, object, str, str]] = {  # command: (argv, where, attribute, the step named)
    "train": (train, engine, "classification_loss", "cnnlab.train.engine._forward_backward"),
    "eval": (lambda _d, r, _t: ["eval", str(r)], InputPipeline, "normalize", "cnnlab.data.loaders.take"),
    "summary": (lambda *_: ["summary", "cifar_resnet20"], torch.nn.Conv2d, "forward", "cnnlab.analysis.graph.run_node"),
    "report": (
        lambda _d, r, t: ["report", str(r), "--out", str(t / "page.html")],
        matplotlib.figure.Figure,
        "savefig",
        "cnnlab.plotting.save_figure",
    ),
}


def traceback_file(err: str, command: str, step: str) -> Path:
    """The path named by the guard's one line, after checking the line."""
    line = re.fullmatch(
        rf"cnnlab {command}: internal error in {re.escape(step)}: Injected: injected fault; the full traceback is in "
        r"(\S+)\n",
        err,
    )
    assert line, err
    return Path(line.group(1))


@pytest.mark.parametrize("command", CASES)
def test_an_injected_fault_is_one_line_naming_its_step_and_its_traceback_file(
    command: str,
    finished: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv, owner, attribute, step = CASES[command]
    monkeypatch.setenv("CNNLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(owner, attribute, fault)
    args = argv(finished[0], finished[1], tmp_path)
    assert main(args) == 1
    err = capsys.readouterr().err
    path = traceback_file(err, command, step)
    assert path.parent == tmp_path / "cache" / "errors"
    assert re.fullmatch(rf"\d{{8}}-\d{{6}}-{command}-\d+\.txt", path.name), path
    text = path.read_text()
    assert f"command line: cnnlab {' '.join(args)}\n" in text and "Traceback (most recent call last)" in text
    assert f"in {step.rsplit('.', 1)[1]}\n" in text and "Injected: injected fault\nwith a second line\n" in text


def test_without_a_cache_the_traceback_goes_to_the_temporary_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CNNLAB_CACHE_DIR", "")  # the cache is off
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.nn.Conv2d, "forward", fault)
    assert main(["summary", "cifar_resnet20"]) == 1
    path = traceback_file(capsys.readouterr().err, "summary", "cnnlab.analysis.graph.run_node")
    assert path.parent == tmp_path / "cnnlab-errors" and "Injected: injected fault" in path.read_text()


def test_ctrl_c_keeps_its_exit_code(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.nn.Conv2d, "forward", interrupt)
    assert main(["summary", "cifar_resnet20"]) == 130
    assert capsys.readouterr().err == "cnnlab: interrupted\n"
