"""Run many trainings with one recipe: each trial is one :func:`cnnlab.train.fit` call for (variant, seed).

Trials run in worker processes, one intra-op thread each (small CIFAR-style nets use two cores better as two
runs than as one run on two threads). What each trial returns is plain data: its per-epoch history, its final
training error measured in eval mode on the un-augmented training images, its final validation error, its test
error (the final weights, evaluated once after training), and the gradient norm of every block at the first step
(initialisation) and at the last step.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.data import Dataset, load_dataset, make_loader
from cnnlab.models.base import CnnlabModel
from cnnlab.registry import build_model
from cnnlab.train.config import TrainConfig
from cnnlab.train.engine import Callback, StepInfo, block_grad_norms, evaluate
from cnnlab.train.trainer import RunResult, fit


@dataclass(frozen=True)
class Trial:
    label: str  # the variant's name in tables and plots, e.g. "plain-56"
    model: str
    model_kwargs: Mapping[str, Any]
    seed: int


@dataclass
class TrialResult:
    label: str
    model: str
    seed: int
    params: int
    history: list[dict[str, Any]]  # EpochMetrics as dicts
    train_error: float  # final, eval mode, un-augmented training images
    val_error: float  # final weights on the validation split
    test_error: float  # final weights on the test split, evaluated once
    grad_norms: dict[str, dict[str, float]]  # {"init": {block: norm}, "end": {block: norm}}
    wall_s: float
    run_dir: str


def block_names(model: CnnlabModel) -> list[str]:
    """The model's blocks from input to output: the units of each stage where the stage is a sequence (a
    CIFAR ResNet's ``S1.S1U1`` ...), the stage itself otherwise, then the head modules."""
    names: list[str] = []
    for stage in model.stage_names():
        module = model.get_submodule(stage)
        children = [n for n, m in module.named_children() if any(True for _ in m.parameters())]
        is_sequence_of_units = type(module) is nn.Sequential  # not a layer that is a Sequential (ConvBnAct)
        names += [f"{stage}.{c}" for c in children] if is_sequence_of_units and children else [stage]
    return names + list(model.head_modules)


class GradNormProbe(Callback):
    """Records :func:`block_grad_norms` at the first step of a run and at its last step."""

    def __init__(self, names: Sequence[str], last_step: int) -> None:
        self.names, self.last_step = list(names), last_step
        self.norms: dict[str, dict[str, float]] = {}

    def on_step(self, info: StepInfo) -> None:
        if info.global_step in (0, self.last_step):
            key = "init" if info.global_step == 0 else "end"
            self.norms[key] = block_grad_norms(info.model, self.names)


def train_error(result: RunResult, data: Dataset) -> float:
    """The error on the training images without augmentation, in eval mode (the paper's training error at the
    end of training, free of the running average over a changing network that the epoch log reports)."""
    config = result.config
    loader = make_loader(data, "train", result.pipeline, augment=False, batch_size=512, seed=config.seed)
    totals = evaluate(result.model, loader.batches(), device=torch.device("cpu"), channels_last=config.channels_last)
    return 1.0 - totals.correct / totals.count


def run_trial(trial: Trial, recipe: TrainConfig, out_dir: str, threads: int = 1) -> TrialResult:
    """One training run (in the calling process)."""
    torch.set_num_threads(threads)
    config = recipe.replace(
        model=trial.model,
        model_kwargs=dict(trial.model_kwargs),
        seed=trial.seed,
        out_dir=out_dir,
        run_name=f"{trial.label}-seed{trial.seed}".replace(" ", "_").replace("=", "-"),
        overwrite=True,  # running an experiment again recomputes its trials
        progress=False,
    )
    with torch.device("meta"):
        names = block_names(build_model(trial.model, trial.model_kwargs))
    data = load_dataset(config.data, data_dir=config.data_dir, val_fraction=config.val_fraction)  # once per trial
    steps = -(-len(data.train) // config.batch_size)
    probe = GradNormProbe(names, last_step=config.epochs * steps - 1)
    t0 = time.perf_counter()
    result = fit(config, data=data, callbacks=[probe], log=lambda _s: None)
    return TrialResult(
        label=trial.label,
        model=trial.model,
        seed=trial.seed,
        params=sum(p.numel() for p in result.model.parameters()),
        history=[asdict(m) for m in result.history],
        train_error=train_error(result, data),
        val_error=1.0 - float(result.final.val_acc or 0.0),
        test_error=1.0 - result.test["final"].test_acc,
        grad_norms=probe.norms,
        wall_s=time.perf_counter() - t0,
        run_dir=str(result.run_dir),
    )


def run_trials(
    trials: Sequence[Trial],
    recipe: TrainConfig,
    out_dir: Path,
    *,
    jobs: int = 2,
    log: Callable[[str], None] = print,
) -> list[TrialResult]:
    """Every trial, ``jobs`` at a time in worker processes (``jobs=1``: in this process), in the given order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = str(out_dir / "runs")
    results: dict[int, TrialResult] = {}
    t0 = time.perf_counter()

    def done(i: int, r: TrialResult) -> None:
        results[i] = r
        log(
            f"[{len(results)}/{len(trials)}] {r.label} seed {r.seed}: train error {r.train_error:.2%}, "
            f"test error {r.test_error:.2%} ({r.wall_s:.0f} s; {time.perf_counter() - t0:.0f} s so far)"
        )

    if jobs <= 1:
        for i, t in enumerate(trials):
            done(i, run_trial(t, recipe, runs, threads=torch.get_num_threads()))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {pool.submit(run_trial, t, recipe, runs): i for i, t in enumerate(trials)}
            for f in as_completed(futures):
                done(futures[f], f.result())
    return [results[i] for i in range(len(trials))]


@dataclass
class Summary:
    """One variant over its seeds: mean and sample standard deviation (0 for a single seed)."""

    label: str
    seeds: int
    train_error_mean: float
    train_error_std: float
    test_error_mean: float
    test_error_std: float
    extra: dict[str, Any] = field(default_factory=dict)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(results: Sequence[TrialResult]) -> list[Summary]:
    """Group by label in first-seen order."""
    labels = list(dict.fromkeys(r.label for r in results))
    out = []
    for label in labels:
        group = [r for r in results if r.label == label]
        tr, te = _mean_std([r.train_error for r in group]), _mean_std([r.test_error for r in group])
        out.append(Summary(label, len(group), tr[0], tr[1], te[0], te[1]))
    return out


def pct(mean: float, std: float) -> str:
    """``"1.23 ± 0.45"`` (percent)."""
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if math.isfinite(std) else f"{100 * mean:.2f}"


def markdown_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    def cell(v: Any) -> str:
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(
    out_dir: Path, results: Sequence[TrialResult], summaries: Sequence[Summary], meta: dict[str, Any]
) -> None:
    """``results.json`` (every trial, the summaries, and ``meta``: command, recipe, machine, wall time)."""
    payload = {"meta": meta, "summary": [asdict(s) for s in summaries], "trials": [asdict(r) for r in results]}
    (out_dir / "results.json").write_text(json.dumps(payload, indent=2))
