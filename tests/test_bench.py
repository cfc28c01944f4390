"""``cnnlab bench`` end to end at tiny sizes: the report's structure, and the interleaved timer. No timing
assertions: speed is for the benchmark itself to report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.bench import (
    Comparison,
    _FirstEpochAt,
    attempt,
    guarded,
    interleaved,
    minimal_training_loop,
    model_size,
    tensors_in,
)
from cnnlab.cli import main


def positive_finite(v: object) -> bool:
    return isinstance(v, float) and math.isfinite(v) and v > 0


def test_quick_bench_writes_a_complete_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--models", "resnet18", "--repeats", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {"machine", "config", "peak_matmul_gflops", "models", "optimized", "training_loop"} <= report.keys()
    assert report["machine"]["threads"] == torch.get_num_threads() and report["machine"]["torch"] == torch.__version__
    assert report["config"]["size"] == 32 and report["config"]["repeats"] == 1
    assert report["peak_matmul_gflops"] == max(report["peak_matmul_samples"])
    assert all(positive_finite(v) for v in report["peak_matmul_samples"])

    (r18,) = report["models"]
    assert r18["status"] == "ok" and r18["peer"] == "torchvision:resnet18"
    assert r18["max_abs_diff"] <= 1e-5  # the peer's weights were loaded: the same function
    for key in ("latency_b1", "throughput", "train_step"):
        c = r18[key]
        assert all(positive_finite(c[k]) for k in ("ours_s", "theirs_s", "ratio"))
        assert c["ratio"] == pytest.approx(c["theirs_s"] / c["ours_s"])
    # ResNet-18: 1.814 GMACs at 224 (REFERENCE.md), scaling with the area; 2 FLOPs per multiply-add
    assert r18["gflop_per_image"] == pytest.approx(2 * 1.814 * (32 / 224) ** 2, rel=0.05)

    opt = report["optimized"]
    assert opt["status"] == "ok" and opt["name"] == "resnet18"
    assert positive_finite(opt["throughput"]["ratio"]) and opt["same_top1"] == 1.0
    assert opt["max_abs_diff"] <= 1e-4 * max(1.0, opt["output_absmax"])
    assert 0 <= opt["eager_fp32_error"] <= 1e-4 * max(1.0, opt["output_absmax"])

    loop = report["training_loop"]
    assert positive_finite(loop["minimal_loop"]["images_per_s"]) and loop["images"] == 128
    assert positive_finite(loop["trainer_images_per_s"]) and positive_finite(loop["trainer_ratio"])
    assert loop["trainer_ratio"] == pytest.approx(loop["trainer_images_per_s"] / loop["minimal_loop"]["images_per_s"])
    assert loop["main_job"] is None  # the quick run skips the 1.5-minute main job

    table = capsys.readouterr().out
    assert "resnet18" in table and "matmul peak" in table


def test_interleaved_alternates_and_takes_medians() -> None:
    calls: list[str] = []
    t = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=4, inner=2)
    assert calls == ["a", "a", "b", "b", "b", "b", "a", "a"] * 2
    assert set(t) == {"a", "b"} and all(v >= 0 for v in t.values())
    assert Comparison(ours_s=2.0, theirs_s=3.0).ratio == 1.5


def test_tensors_in_flattens_auxiliary_outputs() -> None:
    a, b, c = torch.zeros(1), torch.ones(1), torch.full((1,), 2.0)
    assert [t.item() for t in tensors_in(cnnlab.LogitsWithAux(a, (b, c)))] == [0, 1, 2]
    assert [t.item() for t in tensors_in((a, None, b))] == [0, 1]


def test_minimal_loop_learns() -> None:
    """The oracle loop really trains: a linearly separable toy problem's loss falls."""
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Linear(4, 2)
    before = torch.nn.functional.cross_entropy(model(x), y).item()
    result = minimal_training_loop(model, x, y, batch_size=32, epochs=5, lr=0.1)
    assert result["last_loss"] < before / 2 and result["images_per_s"] > 0


def test_a_failing_measurement_is_recorded_not_raised() -> None:
    def fails() -> Comparison:
        raise RuntimeError("too small for the aux head")

    assert guarded(fails) == {"error": "RuntimeError: too small for the aux head"}
    assert guarded(lambda: Comparison(ours_s=1.0, theirs_s=1.0))["ratio"] == 1.0
    assert attempt("net", fails) == {"name": "net", "status": "error: RuntimeError: too small for the aux head"}
    assert attempt("net", lambda: {"name": "net", "status": "ok"})["status"] == "ok"


def test_model_size_keeps_the_papers_proportions() -> None:
    inception_like = torch.nn.Module()
    inception_like.default_image_size, inception_like.min_input_size = 299, 75
    assert model_size(inception_like, 112) == 150 and model_size(inception_like, 32) == 75
    assert model_size(cnnlab.create_model("resnet18"), 112) == 112


def test_time_to_target_is_the_end_of_the_first_epoch_that_reaches_it() -> None:
    probe = _FirstEpochAt(0.98)
    for epoch, acc in enumerate([0.9, 0.97, None, 0.981, 0.99], start=1):
        probe.on_epoch_end(epoch, SimpleNamespace(val_acc=acc), nn.Identity())
        if epoch == 3:
            assert probe.seconds is None
        if epoch == 4:
            reached = probe.seconds
    assert reached is not None and probe.seconds == reached  # later epochs do not move it
