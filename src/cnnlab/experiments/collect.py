"""An experiment's results from its run folders alone: per-run metrics, per-variant summaries, the verdict.

Each run folder (written by ``cnnlab train``, here or on another machine) holds ``results.json`` (the splits,
the best epoch, the test split evaluated once for the final and the best weights; ``"status": "diverged"`` for
a run whose loss became NaN), ``metrics.csv`` (train and validation per epoch) and ``last.pt``. From them:

* ``train_error``: the final weights on the un-augmented training images, in eval mode (the paper's training
  error, free of the running average over a changing network that the epoch log reports);
* ``val_error``, ``best_val_error``, ``test_error``, ``best_test_error``;
* ``steps_to_target``: optimizer steps until the validation accuracy first reached the file's ``target``
  (epoch resolution; a run that never reached it counts one epoch past its end, a censored value that keeps it
  the slowest);
* ``diverged``; ``params``; the per-block gradient norms when the run recorded them;
* with a lesion probe: the validation error with each removable block's branch removed, and with k random ones;
* segmentation runs: ``test_miou``, ``test_small_iou``, ``test_large_iou`` (the final weights on the test split)
  and ``best_val_miou`` from ``results.json``; their errors are pixel errors (1 - pixel accuracy), and they have
  no ``train_error`` (the epoch log's running pixel accuracy is no measurement of the final weights, and
  re-scoring 3,600 canvases per run would double a CPU experiment) and no lesion probe.

A diverged run counts as ``diverged = 1`` and is left out of the error metrics (there is no trained model), so a
variant whose every seed diverged has no error to compare: its comparisons are "not shown" unless the metric is
``diverged``.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from cnnlab.data import SegmentationDataset, make_loader
from cnnlab.errors import ConfigError
from cnnlab.experiments import stats
from cnnlab.experiments.probes import lesion_errors
from cnnlab.experiments.runner import RESULTS, Run, plan
from cnnlab.experiments.spec import SEGMENTATION_METRICS, ExperimentSpec
from cnnlab.train.checkpoint import LAST
from cnnlab.train.engine import evaluate
from cnnlab.train.predict import input_pipeline, model_from_checkpoint
from cnnlab.train.runlog import read_metrics
from cnnlab.train.trainer import load_data


@dataclass
class RunRecord:
    """What one run measured (plain data, JSON-ready)."""

    label: str
    seed: int
    folder: str
    status: str  # "ok", "diverged" or "missing"
    metrics: dict[str, float | None] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    grad_norms: dict[str, dict[str, float]] = field(default_factory=dict)
    lesion: dict[str, Any] | None = None
    wall_s: float | None = None


@dataclass
class Summary:
    """One metric of one variant over its seeds."""

    mean: float | None
    std: float | None
    values: list[float]


@dataclass
class ExperimentResult:
    spec: ExperimentSpec
    records: list[RunRecord]
    summary: dict[str, dict[str, Summary]]  # variant -> metric -> summary
    comparisons: list[stats.Comparison]
    verdict: stats.Verdict | None  # None: the file states no expectation

    def missing(self) -> list[RunRecord]:
        return [r for r in self.records if r.status == "missing"]


def _error(model: torch.nn.Module, loader: Any) -> float:
    totals = evaluate(model, loader.batches(), device=torch.device("cpu"))
    return 1.0 - totals.correct / totals.count


ERRORS = ("train_error", "val_error", "best_val_error", "test_error", "best_test_error")


def measure(run: Run, spec: ExperimentSpec) -> RunRecord:
    """The metrics of one run from its folder (``status="missing"`` when it has not finished)."""
    record = RunRecord(run.label, run.seed, str(run.folder), "missing")
    if not run.done():  # a ConfigError if the folder holds a run of another recipe
        return record
    saved = json.loads((run.folder / RESULTS).read_text())
    record.status = saved.get("status", "ok")
    record.wall_s = saved.get("wall_s")
    record.grad_norms = saved.get("grad_norms") or {}
    if (run.folder / "metrics.csv").is_file():
        record.history = [{k: _number(v) for k, v in row.items()} for row in read_metrics(run.folder)]
    config = run.config
    data = load_data(config)
    steps = saved.get("steps_per_epoch") or -(-len(data.train) // config.batch_size)
    never = float((config.epochs + 1) * steps)  # a run that never reached the target: censored past its end
    segmentation = isinstance(data, SegmentationDataset)
    if segmentation and spec.lesion is not None:
        raise ConfigError(f"{spec.name}: the lesion probe measures classifiers; a segmentation run has none")
    if record.status == "diverged":  # no trained model: it is counted as no better than chance
        chance = 1.0 - 1.0 / data.num_classes
        record.metrics = {"diverged": 1.0, **dict.fromkeys(ERRORS, chance)}
        if segmentation:  # an IoU of 0, the worst there is
            record.metrics |= dict.fromkeys(SEGMENTATION_METRICS, 0.0)
            del record.metrics["train_error"]
        if spec.target is not None:
            record.metrics["steps_to_target"] = never
        if spec.lesion is not None:
            record.metrics["lesion_error"] = chance
        return record
    m: dict[str, float | None] = {"diverged": 0.0}
    m["val_error"] = _complement(record.history[-1].get("val_acc")) if record.history else None
    m["best_val_error"] = _complement(saved.get("best_val_acc"))
    test = saved.get("test") or {}
    m["test_error"] = _complement(test.get("final", {}).get("test_acc"))
    m["best_test_error"] = _complement(test.get("best", {}).get("test_acc"))
    if segmentation:
        final = test.get("final", {})
        m |= {k: final.get(k) for k in ("test_miou", "test_small_iou", "test_large_iou")}
        m["best_val_miou"] = saved.get("best_val_miou")
    if spec.target is not None:
        reached = [int(r["epoch"]) for r in record.history if (r.get("val_acc") or 0) >= spec.target]
        m["steps_to_target"] = float(reached[0] * steps) if reached else never
    model, meta = model_from_checkpoint(run.folder, prefer=LAST)
    m["params"] = float(sum(p.numel() for p in model.parameters()))
    pipeline = input_pipeline(meta)
    if not segmentation:
        m["train_error"] = _error(model, make_loader(data, "train", pipeline, augment=False, batch_size=500))
    if spec.lesion is not None:
        val = make_loader(data, "val", pipeline, batch_size=500)
        record.lesion = lesion_errors(
            model, lambda net: _error(net, val), random_k=spec.lesion.random_k, samples=spec.lesion.samples,
            seed=run.seed,
        )  # fmt: skip
    record.metrics = m
    return record


def common_lesions(records: Sequence[RunRecord]) -> list[str]:
    """The blocks that every probed run could lose (a plain net keeps fewer than its residual twin): the
    variants' ``lesion_error`` is their mean over these, so that it compares the same removals."""
    sets = [list(r.lesion["blocks"]) for r in records if r.lesion]
    return [b for b in sets[0] if all(b in s for s in sets)] if sets else []


def _number(v: str) -> float | None:
    return None if v in ("", "None") else float(v)


def _complement(acc: float | None) -> float | None:
    return None if acc is None else 1.0 - acc


def summarize(records: Sequence[RunRecord], labels: Sequence[str]) -> dict[str, dict[str, Summary]]:
    """Mean and sample standard deviation of every metric of every variant, over the runs that have it."""
    out: dict[str, dict[str, Summary]] = {}
    for label in labels:
        group = [r for r in records if r.label == label and r.status != "missing"]
        names = dict.fromkeys(k for r in group for k in r.metrics)
        out[label] = {}
        for name in names:
            values = [v for r in group if (v := r.metrics.get(name)) is not None]
            mean = statistics.fmean(values) if values else None
            std = statistics.stdev(values) if len(values) > 1 else None
            out[label][name] = Summary(mean, std, values)
    return out


def collect(spec: ExperimentSpec, runs_dir: str | Path, *, partial: bool = False) -> ExperimentResult:
    """Measure every variant run of ``spec`` under ``runs_dir``, summarise, and decide each expectation. Unless
    ``partial``, every run must have finished (a verdict from some of the seeds is a ConfigError)."""
    records = [measure(r, spec) for r in plan(spec, runs_dir) if r.phase == "variant"]
    missing = [r for r in records if r.status == "missing"]
    if missing and not partial:
        names = ", ".join(f"{r.label} seed {r.seed}" for r in missing)
        raise ConfigError(
            f"{len(missing)} of {len(records)} runs under {runs_dir} have not finished ({names}); train them "
            "(cnnlab experiment run, or the printed commands), or judge what has finished with --partial"
        )
    common = common_lesions(records)
    for r in records:
        if r.lesion and r.status == "ok":
            r.metrics["lesion_error"] = statistics.fmean(r.lesion["blocks"][b] for b in common) if common else None
    summary = summarize(records, [v.label for v in spec.variants])
    comparisons = []
    for e in spec.expect:
        better, worse = summary[e.better].get(e.metric), summary[e.worse].get(e.metric)
        a, b = (better.values if better else []), (worse.values if worse else [])
        if len(a) >= 2 and len(b) >= 2:
            if e.metric == "diverged":
                comparisons.append(
                    stats.compare_counts(e.better, a, e.worse, b, metric=e.metric, direction=e.direction)
                )
            else:
                comparisons.append(
                    stats.compare(e.better, a, e.worse, b, metric=e.metric, direction=e.direction, margin=e.margin)
                )
    verdict = None
    if spec.expect:
        decided = {(c.better, c.worse, c.metric): c.verdict for c in comparisons}
        verdict = stats.overall([decided.get((e.better, e.worse, e.metric)) for e in spec.expect])
    return ExperimentResult(spec, records, summary, comparisons, verdict)


def to_json(result: ExperimentResult) -> dict[str, Any]:
    """``results.json`` of an experiment (everything but the meta block, which the caller adds)."""
    s = result.spec
    return {
        "name": s.name,
        "claim": s.claim,
        "source": asdict(s.source) if s.source else None,
        "expect": [asdict(e) for e in s.expect],
        "fingerprint": s.fingerprint(),
        "verdict": result.verdict,
        "comparisons": [asdict(c) for c in result.comparisons],
        "summary": {v: {m: asdict(x) for m, x in ms.items()} for v, ms in result.summary.items()},
        "runs": [asdict(r) for r in result.records],
    }
