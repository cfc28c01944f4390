"""Training in bfloat16 against float32: the training step's images per second of each precision (and compiled)
interleaved in one process, and the main job trained in each precision over several seeds (validation and test
accuracy, wall time), the evidence for the main job's ``precision``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from cnnlab.bench.peers import training_step
from cnnlab.bench.timing import warm_interleaved
from cnnlab.bench.training import train_main_job
from cnnlab.registry import build_model
from cnnlab.train import TrainConfig
from cnnlab.train.precision import bf16_supported


@dataclass(frozen=True)
class TrainingCase:
    """A model trained at a size and batch: what the training-throughput table measures."""

    model: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    size: int = 28  # mnist5k's digits, as the main job trains on them
    batch: int = 64  # the main job's batch
    in_chans: int = 1
    num_classes: int = 10

    @property
    def label(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"{self.model}({args})" if args else self.model


TRAINING_CASES = (
    TrainingCase("cifar_resnet20"),  # the previous main job's model
    TrainingCase("cifar_vgg"),  # the main job's model
    TrainingCase("densenet_bc", {"depth": 40}),  # DenseNet-BC (L=40, k=12): concatenations, many thin convolutions
    TrainingCase("resnet18", size=112, batch=32, in_chans=3, num_classes=1000),  # the bench's size and batch
)
"""The models of the float32 against bfloat16 training table."""


def precision_step(case: TrainingCase, precision: str, *, compiled: bool = False) -> Callable[[], None]:
    """One channels-last training step of ``case`` per call (forward, backward, SGD) in ``precision``, on a fixed
    random batch; the model and its optimizer are built once, seed 0, so every precision starts from the same
    weights."""
    torch.manual_seed(0)
    model = build_model(case.model, dict(case.kwargs), num_classes=case.num_classes, in_chans=case.in_chans)
    model = model.to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(case.batch, case.in_chans, case.size, case.size, generator=gen)
    target = torch.randint(0, case.num_classes, (case.batch,), generator=gen)
    net = torch.compile(model) if compiled else model
    return training_step(
        net, x.contiguous(memory_format=torch.channels_last), target, aux_weight=model.aux_loss_weight,
        bf16=precision == "bf16",
    )  # fmt: skip


def bench_training_precision(
    cases: Sequence[TrainingCase], *, repeats: int, compiled: Sequence[str] = ()
) -> dict[str, Any]:
    """Training images per second of each case in float32 and in bfloat16 (and, for the models in ``compiled``,
    both under ``torch.compile``, with the seconds its first step took), interleaved; ``{"skipped": why}``
    where this processor has no native bfloat16."""
    if not bf16_supported(torch.device("cpu")):
        return {"skipped": "this processor has no bfloat16 dot products (AVX512-BF16 or AMX)"}
    rows = []
    for case in cases:
        variants = ["fp32", "bf16"] + (["fp32+compile", "bf16+compile"] if case.model in compiled else [])
        steps, first_s = {}, {}
        for v in variants:
            step = precision_step(case, v.split("+")[0], compiled=v.endswith("+compile"))
            start = time.perf_counter()
            step()  # the warm-up: torch.compile compiles here
            first_s[v] = time.perf_counter() - start
            steps[v] = step
        per_image = warm_interleaved(steps, images=case.batch, repeats=repeats)
        rows.append({
            "model": case.label, "size": case.size, "batch": case.batch,
            "images_per_s": {v: 1 / s for v, s in per_image.items()},
            "speedup": {v: per_image["fp32"] / s for v, s in per_image.items()},
            "first_step_s": first_s,
        })  # fmt: skip
    return {"rows": rows}


PRECISIONS = ("fp32", "bf16")


def bench_main_job_precision(
    seeds: Sequence[int], *, config: TrainConfig | None = None, out_dir: str | None = None
) -> tuple[dict[str, Any], dict[tuple[str, int], Any]]:
    """The main job (``config``, default ``cnnlab train``'s) trained in float32 and in bfloat16 for each seed, the
    two precisions of a seed one after the other, their order alternating from seed to seed: (each run's figures
    and each precision's summary, the fit results by (precision, seed)). ``out_dir`` keeps the run folders.

    The summary: each precision's mean, lowest and highest final validation accuracy, final test accuracy and
    wall time over the seeds; ``bf16_within_seed_spread`` is whether bfloat16's mean final validation accuracy is
    at least float32's lowest seed's (the test accuracy decides nothing)."""
    config = config or TrainConfig()
    if not bf16_supported(torch.device("cpu")):
        return {"skipped": "this processor has no bfloat16 dot products (AVX512-BF16 or AMX)"}, {}
    runs, results = [], {}
    for k, seed in enumerate(seeds):
        for precision in PRECISIONS if k % 2 == 0 else PRECISIONS[::-1]:
            run_config = config.replace(precision=precision, seed=seed, run_name=f"{precision}-seed{seed}")
            figures, results[precision, seed] = train_main_job(run_config, out_dir=out_dir)
            runs.append(figures)
    summary = {
        p: {
            key: _spread([r[key] for r in runs if r["precision"] == p])
            for key in ("final_val_acc", "final_test_acc", "best_val_acc", "best_test_acc", "total_s")
        }
        for p in PRECISIONS
    }
    within = summary["bf16"]["final_val_acc"]["mean"] >= summary["fp32"]["final_val_acc"]["min"]
    report = {
        "model": config.model, "epochs": config.epochs, "seeds": list(seeds), "runs": runs, "summary": summary,
        "wall_ratio": summary["bf16"]["total_s"]["mean"] / summary["fp32"]["total_s"]["mean"],
        "bf16_within_seed_spread": within,
    }  # fmt: skip
    return report, results


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}
