"""Bad input on the command line: one clear ``cnnlab ...: error:`` line and a conventional exit code, never a
traceback. Usage errors exit 2 (argparse's for a bad flag value, cnnlab's own errors for the rest); a failing
disk or permission exits 1; Ctrl-C 130; a closed stdout pipe (``cnnlab models | head -1``) 141, silently."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.cli import bench_cmd, main, models_cmd


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    """The exit code of ``cnnlab argv`` run in-process (argparse's SystemExit included) and its stderr."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


@pytest.fixture(autouse=True)
def _bench_must_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused ``cnnlab bench`` is refused before it measures anything."""

    def started(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the benchmark started")

    monkeypatch.setattr(bench_cmd, "run_bench", started)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["build", "cifar_resnet20", "--batch", "-1"], "argument --batch: expected an integer >= 1, got '-1'"),
        (["build", "cifar_resnet20", "--batch", "1.5"], "argument --batch: expected an integer >= 1, got '1.5'"),
        (
            ["build", "cifar_resnet20", "--num-classes", "-1"],
            "argument --num-classes: expected an integer >= 0, got '-1'",
        ),
        (["build", "cifar_resnet20", "--in-chans", "0"], "argument --in-chans: expected an integer >= 1, got '0'"),
        (["summary", "resnet18", "--depth", "0"], "argument --depth: expected an integer >= 1, got '0'"),
        (["compare", "resnet18", "--runs", "0"], "argument --runs: expected an integer >= 1, got '0'"),
        (["erf", "cifar_resnet20", "--samples", "0"], "argument --samples: expected an integer >= 1, got '0'"),
        (["erf", "cifar_resnet20", "--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
        (["dilation", "2", "-1"], "argument RATE: expected an integer >= 1, got '-1'"),
        (["dilation", "0"], "argument RATE: expected an integer >= 1, got '0'"),
        (["dilation", "1", "--kernel-size", "0"], "argument --kernel-size: expected an integer >= 1, got '0'"),
        (["bench", "--batch", "0"], "argument --batch: expected an integer >= 1, got '0'"),
        (["bench", "--repeats", "-2"], "argument --repeats: expected an integer >= 1, got '-2'"),
        (["bench", "--size", "x"], "argument --size: expected an integer >= 1, got 'x'"),
        (["bench", "--threads", "0"], "argument --threads: expected an integer >= 1, got '0'"),
        (["eval", "runs/x", "--batch-size", "0"], "argument --batch-size: expected an integer >= 1, got '0'"),
        (["predict", "runs/x", "a.png", "--topk", "0"], "argument --topk: expected an integer >= 1, got '0'"),
    ],
)
def test_bad_flag_values_are_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    code, err = run(capsys, argv)
    assert code == 2 and "Traceback" not in err
    assert f"cnnlab {argv[0]}: error: {expected}" in err and err.startswith("usage: cnnlab")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["dilation", "100000"], ["200001-pixel receptive field", "the limit is 4097 pixels", "at most 2048"]),
        (["dilation", "1", "2", "--kernel-size", "4"], ["kernel_size must be an odd integer >= 1, got 4"]),
        (["dilation", "2000"], ["over 1 x 4005x4005 = 16,040,025 layer-pixels", "the limit is 8,388,608"]),
        (["bench", "--models", "resnet5O"], ["unknown model 'resnet5O'. Did you mean: resnet50"]),
        (["bench", "--quick", "--models", "resnet18", "resnet5O"], ["unknown model 'resnet5O'"]),
        (["build", "resnet18", "--num-classes", "5", "--input", "3x0x4"], ["input size CxHxW", "3x0x4"]),
    ],
)
def test_bad_values_are_one_error_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: list[str]
) -> None:
    code, err = run(capsys, argv)
    assert code == 2 and "Traceback" not in err
    assert all(e in err for e in expected), err


def test_ctrl_c_is_exit_130(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(_args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(models_cmd, "run_models", interrupted)
    assert run(capsys, ["models"]) == (130, "cnnlab: interrupted\n")


def test_os_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def disk_full(_args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "runs/last.pt")

    monkeypatch.setattr(models_cmd, "run_models", disk_full)
    assert run(capsys, ["models"]) == (1, "cnnlab: error: No space left on device: runs/last.pt\n")

    (tmp_path / "file").write_text("")  # a file where a folder should be
    target = tmp_path / "file" / "erf.npy"
    code, err = run(capsys, ["erf", "cifar_resnet20", "--samples", "1", "--input", "3x32x32", "--save", str(target)])
    assert code == 1 and err == f"cnnlab: error: Not a directory: {target}\n"


def _cnnlab(*argv: str) -> list[str]:
    return [sys.executable, "-m", "cnnlab", *argv]


@pytest.mark.parametrize("argv", [["models", "cifar_resnet2*"], ["summary", "cifar_resnet20"]])
def test_a_closed_pipe_ends_quietly(argv: list[str]) -> None:
    """The reader of stdout is gone before the first line: exit 141 (SIGPIPE's), nothing on stderr."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(_cnnlab(*argv), stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert done.returncode == 141 and done.stderr == ""


def test_piping_into_head_shows_no_traceback() -> None:
    command = " ".join(_cnnlab("summary", "cifar_resnet20")) + " | head -3"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 141)  # 0 when everything fitted in the pipe before head exited
    assert done.stderr == "" and len(done.stdout.splitlines()) == 3
