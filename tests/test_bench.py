"""``cnnlab bench`` end to end at tiny sizes: the report's structure, and the interleaved timer. No speed
comparisons: which implementation is faster is for the benchmark itself to report; the timer is checked on
functions of known duration."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.bench import training
from cnnlab.bench.analysis import bench_analysis
from cnnlab.bench.config import BenchConfig
from cnnlab.bench.peers import as_cnnlab_output, attempt, bench_onnxruntime, guarded, model_size, training_step
from cnnlab.bench.report import _format_models, summarize_runs
from cnnlab.bench.timing import Comparison, compare, interleaved, matmul_peaks, numpy_matmul
from cnnlab.bench.training import _FirstEpochAt, as_tensors, minimal_training_loop, training_images
from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.train import TrainConfig, fit


def positive_finite(v: object) -> bool:
    """A measured time or speed: what it is depends on the machine and its load; that it is one does not."""
    return isinstance(v, float) and math.isfinite(v) and v > 0


def torchvision_gflop(name: str, size: int) -> float:
    """FLOPs (2 per multiply-add) of one image through torchvision's model, counted by PyTorch: the oracle of the
    report's ``gflop_per_image``."""
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = getattr(torchvision.models, name)().eval()
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def test_quick_bench_writes_a_complete_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--models", "resnet18", "--repeats", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report.keys() == {
        "machine", "config", "peak_matmul_samples", "peak_matmul_by_source", "peak_matmul_source",
        "peak_matmul_gflops", "parity_runs", "models", "optimized", "training_loop", "analysis",
        "training_precision", "main_job_precision", "int8",
    }  # fmt: skip
    # the quick run skips training in both precisions and the int8 runs (tests/test_bench_precision.py has them)
    assert report["training_precision"] is report["main_job_precision"] is report["int8"] is None
    assert len(report["parity_runs"]) == 1 and report["parity_runs"][0][0]["name"] == "resnet18"
    assert report["analysis"] is None  # the quick run skips the analyzer's timing
    assert report["machine"].keys() == {"cpu", "cpu_features", "cores", "threads", "torch", "python", "platform"}
    assert report["machine"]["threads"] == torch.get_num_threads() and report["machine"]["torch"] == torch.__version__
    assert report["config"]["size"] == 32 and report["config"]["repeats"] == 1
    assert len(report["peak_matmul_samples"]) == 2  # at the start and at the end
    by_source = report["peak_matmul_by_source"]
    assert by_source.keys() == {"torch", "numpy", "onnxruntime"}
    assert all(positive_finite(v) for s in report["peak_matmul_samples"] for v in s.values())
    assert by_source == {k: max(s[k] for s in report["peak_matmul_samples"]) for k in by_source}
    assert report["peak_matmul_gflops"] == max(by_source.values()) == by_source[report["peak_matmul_source"]]

    (r18,) = report["models"]
    assert r18["status"] == "ok" and r18["peer"] == "torchvision:resnet18"
    assert r18["max_abs_diff"] <= 1e-5  # the peer's weights were loaded: the same function
    for key in ("latency_b1", "throughput", "train_step"):
        c = r18[key]
        assert c.keys() == {"ours_s", "theirs_s", "ratio", "ratios"}
        assert c["ratios"] == [report["parity_runs"][0][0][key]["ratio"]] == [c["ratio"]]
        assert positive_finite(c["ours_s"]) and positive_finite(c["theirs_s"])
        assert c["ratio"] == c["theirs_s"] / c["ours_s"]  # above 1: cnnlab faster
    for key in ("latency_b1", "throughput"):  # onnxruntime on the peer's export against the peer's eager model
        c = r18["onnxruntime"][key]
        assert positive_finite(c["ours_s"]) and positive_finite(c["theirs_s"])
        assert c["ratio"] == c["theirs_s"] / c["ours_s"]
    assert r18["gflop_per_image"] == torchvision_gflop("resnet18", 32)  # the same architecture, counted apart
    assert r18["gflops_ours"] == pytest.approx(r18["gflop_per_image"] / r18["throughput"]["ours_s"])

    opt = report["optimized"]
    assert opt["status"] == "ok" and opt["name"] == "resnet18"
    assert all(positive_finite(opt["throughput"][k]) for k in ("ours_s", "theirs_s"))
    assert opt["throughput"]["ours_s"] == opt["paths"]["optimized"]["batch_s"]
    assert opt["throughput"]["theirs_s"] == opt["paths"]["peer_eager"]["batch_s"]
    assert opt["backend"] == "eager" and opt["size"] == 32 and opt["same_top1"] == 1.0
    assert opt["max_abs_diff"] <= 1e-4 * max(1.0, opt["output_absmax"])
    assert 0 < opt["eager_fp32_error"] <= 1e-4 * max(1.0, opt["output_absmax"])  # float32 rounds; not by much
    assert opt["paths"].keys() == {"peer_eager", "optimized", "onnxruntime_cnnlab", "onnxruntime_peer"}
    for path in opt["paths"].values():
        assert all(positive_finite(path[k]) for k in ("b1_s", "batch_s"))
        assert path["gflops"] == pytest.approx(torchvision_gflop("resnet18", 32) / path["batch_s"])
        assert path["fraction_of_peak"] == pytest.approx(path["gflops"] / report["peak_matmul_gflops"])
        assert path["max_abs_diff"] <= 1e-4 * max(1.0, opt["output_absmax"]) and path["same_top1"] == 1.0

    loop = report["training_loop"]
    assert (loop["model"], loop["images"], loop["batch"]) == ("cifar_resnet20", 128, 32)
    assert positive_finite(loop["minimal_loop"]["images_per_s"]) and positive_finite(loop["trainer_images_per_s"])
    assert loop["trainer_ratio"] == loop["trainer_images_per_s"] / loop["minimal_loop"]["images_per_s"]
    assert math.isfinite(loop["minimal_loop"]["last_loss"]) and loop["minimal_loop"]["last_loss"] > 0
    assert loop["main_job"] is None  # the quick run skips the 1.5-minute main job

    table = capsys.readouterr().out
    assert (
        "resnet18" in table
        and "GEMM peak" in table
        and "onnxruntime on torch.onnx.export" in table
        and "ort b1 ms" in table
    )


def test_eager_parity_is_the_median_of_the_runs_ratios() -> None:
    def row(ratio: float, *, ours_s: float = 1.0, error: bool = False) -> dict[str, object]:
        c = {"error": "RuntimeError: out of memory"} if error else {"ours_s": ours_s, "theirs_s": ours_s * ratio}
        c |= {} if error else {"ratio": ratio}
        m = {"name": "m", "status": "ok", "peer": "tv:m", "size": 32, "gflop_per_image": 2.0, "onnxruntime": None}
        return m | {"latency_b1": c, "throughput": c, "train_step": c}

    runs = [[row(0.9, ours_s=2.0)], [row(1.1, ours_s=1.0)], [row(0.95, ours_s=4.0)]]
    (m,) = summarize_runs(runs)
    assert m["throughput"] == {"ours_s": 2.0, "theirs_s": 1.8, "ratio": 0.95, "ratios": [0.9, 1.1, 0.95]}
    assert m["gflops_ours"] == 1.0  # 2 GFLOP per image at the median 2 s per image
    (m,) = summarize_runs([*runs[:2], [row(1.0, error=True)]])
    assert m["train_step"] == {"error": "RuntimeError: out of memory"}  # one failed run is not hidden
    skipped = {"name": "m", "status": "skipped: no peer"}
    assert summarize_runs([runs[0], [skipped]]) == [skipped]
    text = _format_models(summarize_runs(runs))
    assert "0.950 (0.90-1.10)" in text


def test_a_peer_that_onnx_cannot_export_is_an_error_row_and_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    pool = nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(2), nn.Flatten(1))  # 2x2 of a 3x3 map: no ONNX op
    result = bench_onnxruntime(pool, torch.randn(2, 3, 3, 3), BenchConfig.quick())
    assert result is not None and result.keys() == {"latency_b1", "throughput"}
    assert "adaptive_avg_pool2d" in result["throughput"]["error"]
    assert capfd.readouterr().out == ""  # the exporter's graph dump (from C++) did not reach stdout


def test_interleaved_alternates_and_takes_medians() -> None:
    calls: list[str] = []
    t = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=4, inner=2)
    assert calls == ["a", "a", "b", "b", "b", "b", "a", "a"] * 2
    assert set(t) == {"a", "b"} and all(positive_finite(v) for v in t.values())  # a list append
    assert Comparison(ours_s=2.0, theirs_s=3.0).ratio == 1.5


def test_compare_measures_known_durations_per_image() -> None:
    """Two functions of known length (sleeps of 20 and 40 ms, 4 images a call): the seconds per image are the
    durations / 4 (sleeps overshoot, never undershoot), and the ratio says the first is twice as fast."""
    c = compare(lambda: time.sleep(0.02), lambda: time.sleep(0.04), images=4, repeats=3)
    assert 0.005 <= c.ours_s < 0.005 + 0.01 and 0.01 <= c.theirs_s < 0.01 + 0.01
    assert c.ratio == pytest.approx(2.0, rel=0.3)


def test_a_peers_auxiliary_outputs_become_cnnlabs_and_get_the_same_loss() -> None:
    """torchvision's GoogLeNetOutputs is (logits, aux2, aux1) and InceptionOutputs (logits, None) without the aux
    head; the loss is cross-entropy of the logits plus the model's weight times each auxiliary cross-entropy."""
    from torchvision.models import GoogLeNetOutputs, InceptionOutputs

    y = torch.tensor([1, 0, 2])
    main, aux1, aux2 = torch.randn(3, 3), torch.randn(3, 3), torch.randn(3, 3)
    google = as_cnnlab_output(GoogLeNetOutputs(main, aux2, aux1))
    assert isinstance(google, cnnlab.LogitsWithAux) and google.logits is main and google.aux == (aux2, aux1)
    assert as_cnnlab_output(InceptionOutputs(main, None)) == cnnlab.LogitsWithAux(main, ())
    assert as_cnnlab_output(main) is main

    class GoogLeNetLike(nn.Module):  # returns the peer's tuple; its loss must be the oracle's
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x: torch.Tensor) -> GoogLeNetOutputs:
            return GoogLeNetOutputs(main + self.w, aux2 + self.w, aux1 + self.w)

    net = GoogLeNetLike()
    training_step(net, torch.zeros(3), y, aux_weight=0.3)()  # one step; the gradient stays in net.w.grad
    w = torch.zeros((), requires_grad=True)
    oracle = F.cross_entropy(main + w, y) + 0.3 * (F.cross_entropy(aux1 + w, y) + F.cross_entropy(aux2 + w, y))
    (want,) = torch.autograd.grad(oracle, w)
    assert net.w.grad is not None and torch.allclose(net.w.grad, want) and want.abs() > 0


def test_both_sides_of_the_training_comparison_train_on_the_same_mnist5k_images() -> None:
    data = training_images(100)
    assert data.name == "mnist5k" and len(data.train) == 100 and data.val is None and data.test is None
    assert torch.equal(data.train.y, load_dataset("mnist5k").train.y[:100])  # the split's first 100
    model = cnnlab.create_model("cifar_resnet20", num_classes=10, in_chans=1)
    x, y = as_tensors(data, model)
    assert x.shape == (100, 1, 28, 28) and x.dtype == torch.float32 and torch.equal(y, data.train.y)
    assert training_images(10**6).train.y.shape == (3600,)  # at most the whole training split


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
    with torch.device("meta"):
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


def test_the_main_job_is_timed_against_the_previous_recipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = TrainConfig(model="lenet5", epochs=1, train_per_class=20)
    job = training.main_job(config)
    assert (job["model"], job["epochs"], job["best_epoch"]) == ("lenet5", 1, 1)
    # the same seed on the same machine gives the same metrics: what fit itself reports for this recipe
    run = fit(config.replace(progress=False, out_dir=str(tmp_path)), log=lambda _s: None)
    assert job["final_test_acc"] == run.test["final"].test_acc and job["best_test_acc"] == run.test["best"].test_acc
    assert job["best_test_acc"] == job["final_test_acc"]  # one epoch: the best weights are the final ones
    assert job["total_s"] > 0 and (job["seconds_to_98"] is None or job["seconds_to_98"] <= job["total_s"])
    seen: list[TrainConfig] = []

    def fake(config: TrainConfig | None = None) -> dict[str, object]:
        seen.append(config or TrainConfig())
        return {"total_s": 30.0 if config is None else 40.0}

    monkeypatch.setattr(training, "main_job", fake)
    jobs = training.bench_main_jobs()
    assert seen == [TrainConfig(), training.PREVIOUS_MAIN_JOB] and jobs["wall_ratio"] == 0.75
    previous = training.PREVIOUS_MAIN_JOB  # what `cnnlab train` ran until 2026-12-01
    assert (previous.model, previous.epochs, previous.lr, previous.batch_size) == ("cifar_resnet20", 10, 0.1, 64)


def test_numpys_matmul_runs_without_the_old_openblas_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy's measurement runs in a child process that lacks OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (it reports
    its own environment) and uses torch's threads; this process keeps both settings."""
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "1048576")
    result = numpy_matmul(64, repeats=1)
    assert result["env"] == {
        "OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None, "OPENBLAS_NUM_THREADS": str(torch.get_num_threads())
    }  # fmt: skip
    assert positive_finite(result["gflops"])
    assert os.environ["OPENBLAS_CORETYPE"] == "Haswell" and os.environ["OPENBLAS_L2_SIZE"] == "1048576"


def test_the_peak_is_measured_by_three_implementations(monkeypatch: pytest.MonkeyPatch) -> None:
    peaks = matmul_peaks(64, repeats=1)
    assert peaks.keys() == {"torch", "numpy", "onnxruntime"}
    assert all(positive_finite(v) for v in peaks.values())
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed: that source is missing, not fatal
    assert matmul_peaks(64, repeats=1)["onnxruntime"] is None


def test_the_analyzers_timing_runs_it_in_a_fresh_process_and_as_a_command() -> None:
    a = bench_analysis("cifar_resnet20", 32, pattern="cifar_resnet20", repeats=1)
    assert (a["model"], a["size"], a["models_pattern"]) == ("cifar_resnet20", 32, "cifar_resnet20")
    keys = ("analyze_first_s", "analyze_s", "models_cli_first_s", "models_cli_s")
    assert all(positive_finite(a[k]) for k in keys)
