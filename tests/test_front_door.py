"""What a new user meets first: the help that names the demo, the demo model's count with its one-channel stem,
the ledger found from any folder, an unknown model's hint that fits where the name was typed, and latencies shown
with their spread."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.analysis.latency import WIDE_SPREAD, Latency, measure_latencies
from cnnlab.cli import compare_cmd, main
from cnnlab.experiments import ledger
from cnnlab.train import config as train_config
from cnnlab.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
NEAR = "resnet50, se_resnet50, resnet152, resnet101, fcn_resnet50"  # the registered names nearest to "resnt50"


def test_the_help_names_the_demo_that_cnnlab_train_runs(capsys: pytest.CaptureFixture[str]) -> None:
    demo = TrainConfig()
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
    assert f"the demo, {demo.model} for {demo.epochs} epochs on {demo.data}" in out and "ResNet-20" not in out
    doc = train_config.__doc__ or ""
    assert f"``{demo.model}``" in doc and f"{demo.epochs} epochs" in doc  # the module says what the default is


def test_the_demo_models_count_is_the_three_channel_count_less_the_stems_two_missing_input_channels() -> None:
    """cifar_vgg: 3x3 convs without bias, each followed by a batch norm (2 parameters per channel), in stages of
    16, 32 and 64 channels, and a 10-way fc on the pooled 64 channels."""
    widths = [(None, 16), (16, 16), (16, 32), (32, 32), (32, 64), (64, 64)]

    def count(in_chans: int) -> int:
        convs = sum(9 * (cin or in_chans) * cout + 2 * cout for cin, cout in widths)
        return convs + 64 * 10 + 10

    assert count(3) == 72_954 and count(1) == 72_666 == count(3) - 2 * 9 * 16
    with torch.device("meta"):
        for in_chans in (3, 1):
            model = cnnlab.create_model("cifar_vgg", in_chans=in_chans, num_classes=10)
            assert sum(p.numel() for p in model.parameters()) == count(in_chans)


def test_claims_finds_the_ledger_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no experiments/ here: the repository this cnnlab runs from has them
    assert main(["claims", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    planned = sorted(p.stem for p in (REPO / "experiments").glob("*.yaml"))  # every claim, run or not yet
    assert sorted(r["name"] for r in rows) == planned
    for r in rows:
        saved = REPO / "experiments" / "results" / r["name"] / "results.json"
        assert r["verdict"] == (json.loads(saved.read_text())["verdict"] if saved.is_file() else "not run")


def test_claims_says_where_it_looked_when_there_is_no_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ledger, "CHECKOUT_EXPERIMENTS", tmp_path / "site-packages" / "experiments")  # a wheel
    assert main(["claims"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'experiments'} or {tmp_path / 'site-packages' / 'experiments'}" in err
    assert "--experiments DIR" in err
    (tmp_path / "empty").mkdir()
    assert main(["claims", "--experiments", str(tmp_path / "empty")]) == 2
    assert f"no experiment files (*.yaml) in {tmp_path / 'empty'};" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["summary", "resnt50"],
        ["build", "resnt50"],
        ["compare", "resnet18", "resnt50", "--no-latency"],
        ["diagram", "resnt50"],
        ["erf", "resnt50"],
        ["report", "resnt50"],
        ["train", "--model", "resnt50", "--epochs", "1"],
        ["bench", "--quick", "--models", "resnt50"],
    ],
)
def test_an_unknown_model_on_the_command_line_points_to_cnnlab_models(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    n = len(cnnlab.list_models())
    assert (
        err == f"cnnlab: error: unknown model 'resnt50'. Did you mean: {NEAR}? `cnnlab models` lists all {n} models.\n"
    )
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_an_unknown_model_in_python_points_to_list_models() -> None:
    n = len(cnnlab.list_models())
    with pytest.raises(cnnlab.UnknownModelError) as e:
        cnnlab.create_model("resnt50")
    assert (
        str(e.value) == f"unknown model 'resnt50'. Did you mean: {NEAR}? `cnnlab.list_models()` lists all {n} models."
    )


class Sleeper(nn.Module):
    """A model whose forward passes take the given seconds, in turn; ``calls`` records the order of all models."""

    def __init__(self, name: str, seconds: list[float], calls: list[str]) -> None:
        super().__init__()
        self.name, self.seconds, self.calls = name, list(seconds), calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(self.name)
        time.sleep(self.seconds.pop(0))
        return x


def test_latencies_are_timed_in_turns_and_keep_their_range() -> None:
    """Sleeps of known length (sleeps overshoot, never undershoot): the median, the fastest and the slowest run."""
    calls: list[str] = []
    a = Sleeper("a", [0.0, 0.010, 0.030, 0.020], calls)  # one warm-up pass, then three timed ones
    b = Sleeper("b", [0.0, 0.005, 0.005, 0.005], calls)
    la, lb = measure_latencies([a, b], [(1, 2, 2), (1, 2, 2)], runs=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert 20 <= la.median_ms < 20 + 8 and 10 <= la.min_ms < 10 + 8 and 30 <= la.max_ms < 30 + 8
    assert la.runs == lb.runs == 3 and la.spread == la.max_ms / la.min_ms
    assert 5 <= lb.min_ms <= lb.median_ms <= lb.max_ms < 5 + 8


def test_compare_shows_the_range_and_warns_when_it_is_wide(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The three ResNet-18 latencies that one `cnnlab compare` gave in three runs under load (issue 22)."""
    busy = Latency(median_ms=515.0, min_ms=194.0, max_ms=1408.0, runs=3, batch=1, threads=2)
    idle = Latency(median_ms=20.0, min_ms=19.0, max_ms=19.0 * WIDE_SPREAD, runs=3, batch=1, threads=2)
    monkeypatch.setattr(compare_cmd, "measure_latencies", lambda models, sizes, runs: [busy, idle])
    assert main(["compare", "resnet18", "lenet5", "--runs", "3"]) == 0
    out, err = capsys.readouterr()
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line}
    assert lines["model"][-4:] == ["CPU", "ms", "(median)", "min-max"]
    assert lines["resnet18"][-2:] == ["515.0", "194.0-1,408.0"] and lines["lenet5"][-2:] == ["20.0", "19.0-28.5"]
    assert "the median and the range of 3 forward passes of each model, timed in turns" in out
    assert err == (
        "cnnlab: warning: resnet18's runs took 194.0 to 1,408.0 ms (7.3x, more than 1.5x): the machine was busy; "
        "compare on an idle machine or with more --runs\n"
    )  # lenet5's 1.5x is not wide
    monkeypatch.setattr(compare_cmd, "measure_latencies", lambda models, sizes, runs: [busy])
    assert main(["compare", "resnet18", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["cpu_latency_ms"], row["cpu_latency_min_ms"], row["cpu_latency_max_ms"]) == (515.0, 194.0, 1408.0)
