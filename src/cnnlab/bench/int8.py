"""int8 inference of trained models: test accuracy and speed of a run's model in float32 (PyTorch eager, ONNX Runtime,
OpenVINO), quantized to int8 (:func:`cnnlab.optimize.quantize_int8`, calibrated on the run's own training split,
run by ONNX Runtime and by OpenVINO) and in OpenVINO's bfloat16, all on the run's test split."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from cnnlab.bench.timing import warm_interleaved
from cnnlab.bench.training import train_main_job
from cnnlab.data import make_loader
from cnnlab.errors import MissingDependencyError
from cnnlab.optimize import optimize_for_inference
from cnnlab.train import TrainConfig
from cnnlab.train.config import first_recipe
from cnnlab.train.predict import calibration_batches, input_pipeline, model_from_checkpoint, run_data

INFERENCE_PATHS = {
    "torch_fp32": ("eager", "fp32"),
    "onnxruntime_fp32": ("onnxruntime", "fp32"),
    "onnxruntime_int8": ("onnxruntime", "int8"),
    "openvino_fp32": ("openvino", "fp32"),
    "openvino_int8": ("openvino", "int8"),
    "openvino_bf16": ("openvino", "bf16"),
}
"""The paths of the int8 table, by report key: (``optimize_for_inference`` backend, precision); ``torch_fp32`` is
the checkpoint's eager model itself, and OpenVINO's bfloat16 shows what the other low precision costs."""


def bench_int8(run_dir: str | Path, *, repeats: int = 3, batch: int = 100) -> dict[str, Any]:
    """Each path of :data:`INFERENCE_PATHS` on the test split of the run in ``run_dir`` (its ``best.pt``): accuracy,
    agreement of its top-1 class with float32 eager's, images per second (the whole split in batches of ``batch``,
    interleaved ``repeats`` times) and preparation seconds (export, calibration and quantization, compilation).
    Paths whose runtime is not installed are left out."""
    model, meta = model_from_checkpoint(run_dir)
    data = run_data(meta)
    x, y = next(make_loader(data, "test", input_pipeline(meta), batch_size=len(data.test)).batches())[:2]
    calibration = calibration_batches(meta)
    example = x[:batch]
    runs: dict[str, Any] = {}
    prepare: dict[str, float] = {}
    for name, (backend, precision) in INFERENCE_PATHS.items():
        start = time.perf_counter()
        try:
            runs[name] = model if name == "torch_fp32" else optimize_for_inference(
                model, example_input=example, backend=backend, precision=precision,  # type: ignore[arg-type]
                calibration=calibration if precision == "int8" else None,
            )  # fmt: skip
        except MissingDependencyError:
            continue
        prepare[name] = time.perf_counter() - start
    with torch.no_grad():
        logits = {name: torch.cat([run(b) for b in x.split(batch)]) for name, run in runs.items()}

    def whole_split(run: Any) -> Any:
        def call() -> None:
            with torch.no_grad():
                for b in x.split(batch):
                    run(b)

        return call

    per_image = warm_interleaved({n: whole_split(r) for n, r in runs.items()}, images=len(x), repeats=repeats)
    reference = logits["torch_fp32"].argmax(1)
    return {
        "model": meta["model"],
        "data": meta["data"],
        "test_images": len(y),
        "calibration_images": sum(map(len, calibration)),
        "paths": {
            name: {
                "test_acc": float((out.argmax(1) == y).double().mean()),
                "same_top1": float((out.argmax(1) == reference).double().mean()),
                "images_per_s": 1 / per_image[name],
                "prepare_s": prepare[name],
            }
            for name, out in logits.items()
        },
    }


RTS_RESNET = first_recipe(data="mnist5k-rts")
"""The ResNet of the int8 comparison: the previous main job's recipe (ResNet-20, 10 epochs) on mnist5k-rts (digits
rotated, scaled and translated on a 42x42 canvas), a harder task than mnist5k's, in the main job's precision."""


def bench_int8_runs(runs_dir: str | Path, *, main_run: str | Path | None = None) -> dict[str, Any]:
    """:func:`bench_int8` of the main job (``main_run``, or one trained here) and of :data:`RTS_RESNET` trained
    here, their run folders under ``runs_dir``."""
    precision = TrainConfig().precision  # the main job's
    if main_run is None:
        main_run = train_main_job(TrainConfig(run_name="main"), out_dir=str(runs_dir))[1].run_dir
    rts = train_main_job(RTS_RESNET.replace(precision=precision, run_name="rts"), out_dir=str(runs_dir))[1].run_dir
    return {"main_job": bench_int8(main_run), "rts_resnet": bench_int8(rts)}
