"""The analyzer's commands: summary, compare, tricks, dilation, erf, and the GMACs column of ``models``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from cnnlab.cli import main
from tests.helpers import png_figure


def run(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> str:
    assert main(list(argv)) == code
    return capsys.readouterr().out


def test_models_shows_macs_at_the_default_size(capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "models", "resnet5*")
    assert "MACs" in out.splitlines()[0]
    line = next(ln for ln in out.splitlines() if ln.startswith("resnet50 "))
    assert "25,557,032" in line and "4.089 GMACs" in line  # REFERENCE.md: 4.089 GMACs
    line = run(capsys, "models", "lenet5").splitlines()[2]
    assert "0.327 MMACs" in line and "0.000" not in line  # below a billion: MMACs, one rule everywhere


def test_summary_table_json_csv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = run(capsys, "summary", "cifar_resnet20", "--depth", "1", "--plot", str(tmp_path / "s.png"))
    assert "S3" in out and "receptive field   81 px, jump 4" in out and "269,722" in out
    width, height = png_figure(tmp_path / "s.png")
    assert width > height  # one bar per layer, side by side
    data = json.loads(run(capsys, "summary", "resnet18", "--format", "json", "--input", "3x64x64"))
    assert data["input_size"] == [3, 64, 64] and data["params"] == 11_689_512
    rows = list(csv.DictReader(io.StringIO(run(capsys, "summary", "resnet18", "--format", "csv", "--depth", "1"))))
    assert rows[0]["path"] == "stem" and rows[-1]["path"] == "head"


def test_summary_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "resnt50"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error: unknown model 'resnt50'") and "Traceback" not in err
    assert main(["summary", "resnet18", "--input", "3x2"]) == 2
    assert "expected an input size CxHxW" in capsys.readouterr().err
    assert main(["summary", "resnet18", "--input", "1x64x64"]) == 2
    assert "got 1 channels" in capsys.readouterr().err


def test_compare_side_by_side(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rows = json.loads(run(capsys, "compare", "resnet18", "resnet34", "--no-latency", "--format", "json"))
    assert [r["model"] for r in rows] == ["resnet18", "resnet34"]
    assert [r["depth"] for r in rows] == [18, 34] and rows[1]["gmacs"] == pytest.approx(3.664, rel=1e-3)
    out = run(capsys, "compare", "cifar_resnet20", "cifar_plain20", "--runs", "1", "--plot", str(tmp_path / "c.png"))
    assert "CPU ms" in out and "cifar_plain20" in out
    width, height = png_figure(tmp_path / "c.png")
    assert width > 3 * height  # five panels in a row: params, MACs, depth, receptive field, latency
    out = run(capsys, "compare", "lenet5", "resnet18", "--no-latency")
    assert "CPU ms" not in out and "0.327 MMACs" in out and "1.814 GMACs" in out  # no empty latency column
    assert "cpu_latency_ms" not in run(capsys, "compare", "lenet5", "--no-latency", "--format", "json")


def test_tricks_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = run(capsys, "tricks", "--only", "bottleneck", "reduction", "--plot", str(tmp_path / "t.png"))
    assert "589,824" in out and "69,632" in out and "120,422,400" in out and "12,443,648" in out
    assert " NO" not in out and png_figure(tmp_path / "t.png")
    rows = json.loads(run(capsys, "tricks", "--only", "group", "--format", "json"))
    assert all(r["agrees"] for r in rows)


@pytest.mark.parametrize(("rates", "holes"), [(["2", "2", "2"], 120), (["1", "2", "5"], 0)])
def test_dilation_map(capsys: pytest.CaptureFixture[str], tmp_path: Path, rates: list[str], holes: int) -> None:
    out = run(capsys, "dilation", *rates, "--plot", str(tmp_path / "d.png"))
    assert f"{holes} holes" in out and png_figure(tmp_path / "d.png")
    assert "DilatedConvStack" in out  # the measured layers are named
    data = json.loads(run(capsys, "dilation", *rates, "--format", "json"))
    assert data["holes"] == holes and len(data["paths"]) == data["receptive_field"]


def test_dilation_applies_the_hdc_rule_per_group(capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "dilation", "1", "2", "5", "1", "2", "5")
    assert "0 holes" in out and "cycle [1, 2, 5] x 2: ok (" in out and "FAILS" not in out
    data = json.loads(run(capsys, "dilation", "1", "2", "5", "1", "2", "5", "--group", "2", "--format", "json"))
    assert data["hdc"]["groups"] == [[1, 2], [5, 1], [2, 5]] and data["hdc"]["groups_ok"] == [True, False, False]
    assert not data["hdc"]["rule_ok"] and data["hdc"]["exact_ok"] and data["holes"] == 0
    assert "group 2 [5, 1]: the first rate is 5, not 1" in data["hdc"]["rule"]


def test_erf_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    npy, png = tmp_path / "erf.npy", tmp_path / "erf.png"
    out = run(capsys, "erf", "cifar_resnet20", "--samples", "2", "--save", str(npy), "--plot", str(png))
    assert "theoretical receptive field [81, 81]" in out and png_figure(png)
    assert np.load(npy).shape == (32, 32)
