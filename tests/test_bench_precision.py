"""The benchmark's sections past float32 at tiny sizes: training in float32 against bfloat16, the main job in both
precisions over seeds, OpenVINO/bfloat16/int8 inference paths against the peer, and int8 of a trained run. No speed
claims: which is faster is for the benchmark to report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from cnnlab import create_model
from cnnlab.bench import precision as bench_precision
from cnnlab.bench.int8 import INFERENCE_PATHS, bench_int8
from cnnlab.bench.peers import build_pair, low_precision_paths, training_step
from cnnlab.bench.precision import TrainingCase, bench_main_job_precision, bench_training_precision
from cnnlab.bench.report import _format_int8, _format_main_job_precision, _format_training_precision
from cnnlab.train import TrainConfig, fit
from cnnlab.train.predict import model_from_checkpoint, run_data
from cnnlab.weights import load_pretrained
from tests.helpers import randomize_norm_stats
from tests.train_fixtures import tiny_config, write_mnist

TINY_CASE = TrainingCase("cifar_resnet20", {"layers": [1, 1, 1], "widths": [4, 8, 8]}, size=16, batch=8)


def test_training_in_both_precisions_is_timed_and_formatted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_precision, "bf16_supported", lambda device: True)
    t = bench_training_precision([TINY_CASE], repeats=1)
    (row,) = t["rows"]
    assert row["model"] == "cifar_resnet20(layers=[1, 1, 1], widths=[4, 8, 8])" and row["batch"] == 8
    assert row["images_per_s"].keys() == {"fp32", "bf16"} and row["speedup"]["fp32"] == 1.0
    assert all(0 < v < math.inf for v in row["images_per_s"].values())
    assert row["speedup"]["bf16"] == pytest.approx(row["images_per_s"]["bf16"] / row["images_per_s"]["fp32"])
    text = "\n".join(_format_training_precision(t))
    assert "fp32 img/s" in text and "bf16 img/s" in text and "1.00x" in text
    monkeypatch.setattr(bench_precision, "bf16_supported", lambda device: False)
    skipped = bench_training_precision([TINY_CASE], repeats=1)
    assert "no bfloat16 dot products" in skipped["skipped"]


def test_the_bench_training_step_runs_bf16_under_autocast_and_keeps_float32_weights() -> None:
    model = create_model("cifar_resnet20", num_classes=10, in_chans=1, layers=[1, 1, 1], widths=[4, 8, 8])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen: list[torch.dtype] = []
    model.head.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    x, target = torch.randn(8, 1, 16, 16), torch.randint(0, 10, (8,))
    training_step(model, x, target, aux_weight=0.0, bf16=True)()
    assert seen == [torch.bfloat16]  # the logits came out of bfloat16 products
    after = model.state_dict()
    assert all(after[k].dtype == before[k].dtype for k in before)  # float32 weights and statistics stay float32
    assert not torch.equal(after["head.fc.weight"], before["head.fc.weight"])  # and the step updated them


def test_main_job_precisions_alternate_by_seed_and_the_summary_decides_on_validation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench_precision, "bf16_supported", lambda device: True)
    seen: list[tuple[str, int]] = []
    val = {("fp32", 0): 0.99, ("fp32", 1): 0.995, ("fp32", 2): 0.9925, ("bf16", 0): 0.9925, ("bf16", 1): 0.99,
           ("bf16", 2): 0.99}  # fmt: skip

    def fake(config: TrainConfig, *, out_dir: str | None = None) -> tuple[dict[str, Any], str]:
        key = (config.precision, config.seed)
        seen.append(key)
        figures = {"precision": config.precision, "seed": config.seed, "final_val_acc": val[key],
                   "final_test_acc": 0.98, "best_val_acc": val[key], "best_test_acc": 0.98,
                   "total_s": 50.0 if config.precision == "fp32" else 30.0}  # fmt: skip
        return figures, f"result {key}"

    monkeypatch.setattr(bench_precision, "train_main_job", fake)
    report, results = bench_main_job_precision((0, 1, 2))
    assert seen == [("fp32", 0), ("bf16", 0), ("bf16", 1), ("fp32", 1), ("fp32", 2), ("bf16", 2)]
    assert results[("bf16", 1)] == "result ('bf16', 1)"
    fp32 = report["summary"]["fp32"]["final_val_acc"]
    assert fp32 == {"mean": pytest.approx((0.99 + 0.995 + 0.9925) / 3), "min": 0.99, "max": 0.995}
    assert report["bf16_within_seed_spread"]  # bf16's mean 0.99083 >= fp32's lowest seed, 0.99
    assert report["wall_ratio"] == pytest.approx(30 / 50)
    val[("bf16", 0)] = 0.985  # mean 0.98833: below every fp32 seed
    assert not bench_main_job_precision((0, 1, 2))[0]["bf16_within_seed_spread"]
    assert "outside float32's seed spread" in "\n".join(_format_main_job_precision(bench_main_job_precision((0,))[0]))


def test_low_precision_paths_agree_with_the_peer() -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    ours, theirs, _ = build_pair("resnet18")
    load_pretrained(ours, randomize_norm_stats(theirs))  # folded biases that differ, as a trained model's do
    x = torch.randn(2, 3, 32, 32)
    paths = low_precision_paths(ours.eval(), theirs.eval(), x, [torch.randn(4, 3, 32, 32)])
    assert paths.keys() == {"openvino_peer_f32", "openvino_peer_default", "openvino_bf16", "onnxruntime_int8",
                            "openvino_int8"}  # fmt: skip
    with torch.no_grad():
        ref = theirs(x)
    scale = ref.abs().max().item()
    for name, (run, prepare_s) in paths.items():
        assert prepare_s > 0
        gap = (run(x) - ref).abs().max().item() / scale
        assert gap <= (1e-4 if name == "openvino_peer_f32" else 0.1), name  # float32; bf16 and int8 within 10%
    assert paths["openvino_peer_f32"][0].runner.precision == "f32"


def test_int8_of_a_trained_run_reports_accuracy_agreement_and_speed(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    data = write_mnist(tmp_path / "data", n_train=128, n_test=64)
    small = {"layers": [1, 1, 1], "widths": [8, 16, 16]}
    config = tiny_config(data, tmp_path / "runs", epochs=10, augment=False, model_kwargs=small, precision="fp32")
    run = fit(config, log=lambda _s: None)
    r = bench_int8(run.run_dir, repeats=1, batch=32)
    train = run_data(model_from_checkpoint(run.run_dir)[1]).train
    assert r["test_images"] == 64 and r["calibration_images"] == len(train)  # all of its (fewer than 512) images
    assert set(r["paths"]) <= set(INFERENCE_PATHS) and {"torch_fp32", "onnxruntime_int8"} <= set(r["paths"])
    eager = r["paths"]["torch_fp32"]
    assert eager["test_acc"] == pytest.approx(run.test["best"].test_acc) and eager["same_top1"] == 1.0
    for p in r["paths"].values():
        assert abs(p["test_acc"] - eager["test_acc"]) <= 3 / 64 and p["same_top1"] >= 0.9 and p["images_per_s"] > 0
    assert "onnxruntime_int8" in "\n".join(_format_int8(r, "a tiny run"))
