"""The command line, run in-process through ``cnnlab.cli.main`` and once as a real subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cnnlab.cli import main


def test_models_lists_names_and_exact_params(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "cifar_resnet2*"]) == 0
    out = capsys.readouterr().out
    assert "cifar_resnet20" in out and "269,722" in out
    assert "resnet50" not in out


def test_build_prints_name_params_and_output_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "cifar_resnet20", "--num-classes", "7", "--input", "1x32x32", "--in-chans", "1"]) == 0
    out = capsys.readouterr().out
    assert "cifar_resnet20" in out and "(2, 7)" in out and "(2, 1, 32, 32)" in out


def test_errors_are_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "resnt50"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error: unknown model 'resnt50'") and "resnet50" in err
    assert "Traceback" not in err
    assert main(["build", "resnet18", "--input", "1x64x64"]) == 2
    assert "got 1 channels" in capsys.readouterr().err


def test_bad_input_size_is_the_analyzers_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "resnet18", "--input", "3x2"]) == 2  # cnnlab.analysis.parse_input_size's message
    assert capsys.readouterr().err == (
        "cnnlab: error: expected an input size CxHxW such as 3x224x224 (or one size such as 224), got '3x2'\n"
    )


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cnnlab", "models", "plain*"], capture_output=True, text=True, check=True
    )
    assert "plain34" in done.stdout
