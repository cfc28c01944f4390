"""An experiment's results from its run folders alone: per-run metrics, per-variant summaries, the verdict.

Each run folder (written by ``cnnlab train``, here or on another machine) holds ``results.json`` (the splits,
the best epoch, the test split evaluated once for the final and the best weights; ``"status": "diverged"`` for
a run whose loss became NaN), ``metrics.csv`` (train and validation per epoch), ``last.pt`` and, for runs that
validate within epochs, ``watch.json`` (:mod:`cnnlab.train.watch`). From them:

* ``train_error``: the final weights on the un-augmented training images, in eval mode (the paper's training
  error, free of the running average over a changing network that the epoch log reports), and
  ``generalization_gap``, the test error minus it;
* ``val_error``, ``best_val_error``, ``test_error``, ``best_test_error``;
* the validation curve within epochs (``curve``: step, accuracy, zeros entering the head), from which
  ``steps_to_target`` is the first step at which the accuracy reached a target, or the run is censored at its
  last step (:func:`reach`); ``dead`` (1 when the zeros at the end are at least the file's ``dead_threshold``)
  and ``zeros``;
* ``offset_px`` for a net with deformable convs: the mean length of their offsets on the validation split, in
  pixels of each layer's input map (``offsets``: per layer);
* ``diverged``; ``params``; the per-block gradient norms when the run recorded them, and from them ``grad_ratio``
  and ``grad_ratio_end`` (:func:`.probes.grad_ratios`); ``converged`` when the
  recipe stops early: stopped by its patience, or at the epoch cap after as many validations without a better one;
* with a lesion probe: the validation error with each removable block's branch removed, and with k random ones;
  ``lesion_error`` (the mean over the blocks every variant can lose), ``lesion_step`` (the curve's steepest rise)
  and ``lesion_downsampling_excess`` (:mod:`.probes`);
* segmentation runs: ``test_miou``, ``test_small_iou``, ``test_large_iou`` (the final weights on the test split)
  and ``best_val_miou`` from ``results.json``; their errors are pixel errors (1 - pixel accuracy), and they have
  no ``train_error`` (the epoch log's running pixel accuracy is no measurement of the final weights, and
  re-scoring 3,600 canvases per run would double a CPU experiment) and no lesion probe.

**A failed run is not evidence.** A run whose loss diverged, or whose training accuracy (final weights, eval
mode) closes less than a fifth of the gap from chance to perfect (:data:`FAILURE_GAP`: below 28% for ten
classes; for a segmentation net its final validation mean IoU against 1/K), has ``failure`` set, and
:func:`judge` makes every expectation that rests on it **invalid** with the reason, unless the expectation is
about failure itself (``about_failure``). A diverged run counts as ``diverged = 1`` and as chance error (there is
no trained model). With early stopping in the recipe, an expectation on a final error or IoU whose runs hit the
epoch cap before converging is invalid too.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from cnnlab.data import SegmentationDataset, make_loader
from cnnlab.errors import ConfigError
from cnnlab.experiments import stats
from cnnlab.experiments.probes import downsampling_excess, grad_ratios, lesion_errors, lesion_step, offset_lengths
from cnnlab.experiments.runner import RESULTS, Run, plan
from cnnlab.experiments.spec import (
    COUNT_METRICS,
    DEAD_THRESHOLD,
    FINAL_METRICS,
    SEGMENTATION_METRICS,
    Expectation,
    ExperimentSpec,
)
from cnnlab.train.checkpoint import LAST
from cnnlab.train.engine import evaluate
from cnnlab.train.predict import input_pipeline, model_from_checkpoint
from cnnlab.train.runfolder import WATCH
from cnnlab.train.runlog import read_metrics
from cnnlab.train.trainer import load_data

FAILURE_GAP = 0.2  # a run fails when it closes less than this fraction of the gap from chance to perfect


@dataclass
class RunRecord:
    """What one run measured (plain data, JSON-ready). The fields after ``wall_s`` were added later: results
    written before them read back with their defaults (None: not known)."""

    label: str
    seed: int
    folder: str
    status: str  # "ok", "diverged" or "missing"
    metrics: dict[str, float | None] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    grad_norms: dict[str, dict[str, float]] = field(default_factory=dict)
    lesion: dict[str, Any] | None = None
    wall_s: float | None = None
    num_classes: int | None = None
    test_images: int | None = None  # the test split's size (what the binomial standard error of an error counts)
    failure: str | None = None  # why the run failed (None: it did not, or not known)
    converged: bool | None = None  # stopped by its patience (True) or at the epoch cap (False); None: no patience
    steps_per_epoch: int | None = None
    curve: list[list[float | None]] | None = None  # [step, validation accuracy, zeros entering the head]
    offsets: dict[str, float] | None = None  # deformable layers: mean offset length (px) on the validation split

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunRecord:
        """A record as ``results.json`` holds it (of any version: unknown keys are refused, missing ones default)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


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
    seeds: tuple[int, ...] = ()  # the seeds judged (the file's, or those of the rounds run)
    rounds: dict[str, Any] | None = None  # a sequential experiment: the rounds run, planned, and why it stopped

    def missing(self) -> list[RunRecord]:
        return [r for r in self.records if r.status == "missing"]


def _error(model: torch.nn.Module, loader: Any) -> float:
    totals = evaluate(model, loader.batches(), device=torch.device("cpu"))
    return 1.0 - totals.correct / totals.count


ERRORS = ("train_error", "val_error", "best_val_error", "test_error", "best_test_error")


def failure(record: RunRecord) -> str | None:
    """Why ``record``'s run failed, or None: it diverged, or its training accuracy (a classifier's, from its
    ``train_error``) or final validation mean IoU (a segmentation net's) closes less than :data:`FAILURE_GAP` of
    the gap from chance (1 / classes) to perfect."""
    if record.status == "diverged":
        return "its loss diverged"
    k = record.num_classes
    if not k or record.status != "ok":
        return None
    chance = 1.0 / k
    floor = chance + FAILURE_GAP * (1.0 - chance)
    train_error = record.metrics.get("train_error")
    if train_error is not None:
        score, what = 1.0 - train_error, "training accuracy"
    else:
        score, what = (record.history[-1].get("val_miou") if record.history else None), "validation mean IoU"
    if score is None or score >= floor:
        return None
    return f"{what} {100 * score:.1f}%, near chance ({100 * chance:.0f}%; a run must reach {100 * floor:.0f}%)"


def reach(curve: Sequence[Sequence[float | None]], target: float) -> tuple[float, bool]:
    """(step, reached): the first step at which the validation accuracy of ``curve`` reached ``target``, or the
    last step measured and False (the run is censored there)."""
    for step, acc, _ in curve:
        if acc is not None and acc >= target:
            return float(step), True  # type: ignore[arg-type]
    return float(curve[-1][0]) if curve else 0.0, False  # type: ignore[arg-type]


def end_zeros(record: RunRecord) -> float | None:
    """The fraction of zeros entering the head at the last epoch's end (None: not measured)."""
    spe, curve = record.steps_per_epoch, record.curve or []
    ends = [z for step, _, z in curve if spe and step and step % spe == 0 and z is not None]  # type: ignore[operator]
    return ends[-1] if ends else None


def _dying(record: RunRecord, spec: ExperimentSpec) -> dict[str, float | None]:
    """``zeros`` and ``dead`` (steps to a target are not a number per run: :func:`reach` gives them with their
    censoring)."""
    zeros = end_zeros(record)
    threshold = spec.dead_threshold if spec.dead_threshold is not None else DEAD_THRESHOLD
    return {"zeros": zeros, "dead": None if zeros is None else float(zeros >= threshold)}


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
    record.num_classes, record.test_images = data.num_classes, len(data.test) if data.test is not None else None
    steps = saved.get("steps_per_epoch") or -(-len(data.train) // config.batch_size)
    record.steps_per_epoch = steps
    if config.early_stop:  # stopped by its patience, or at the cap after as many validations without a better one
        after_best = [h for h in record.history if h.get("val_acc") is not None and h["epoch"] > saved["best_epoch"]]
        record.converged = bool(saved.get("stopped_early")) or len(after_best) >= config.early_stop
    if config.val_every_steps:
        watch = run.folder / WATCH
        if not watch.is_file() and record.status == "ok":
            raise ConfigError(f"{run.folder} has no {WATCH}: it did not validate within epochs; delete it to train "
                              "it again")  # fmt: skip
        record.curve = json.loads(watch.read_text())["points"] if watch.is_file() else []
    segmentation = isinstance(data, SegmentationDataset)
    if segmentation and spec.lesion is not None:
        raise ConfigError(f"{spec.name}: the lesion probe measures classifiers; a segmentation run has none")
    if record.status == "diverged":  # no trained model: it is counted as no better than chance
        chance = 1.0 - 1.0 / data.num_classes
        record.metrics = {"diverged": 1.0, **dict.fromkeys(ERRORS, chance)}
        if segmentation:  # an IoU of 0, the worst there is
            record.metrics |= dict.fromkeys(SEGMENTATION_METRICS, 0.0)
            del record.metrics["train_error"]
        if config.val_every_steps:
            record.metrics |= _dying(record, spec)
        if spec.lesion is not None:
            record.metrics["lesion_error"] = chance
        record.failure = failure(record)
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
    if config.val_every_steps:
        m |= _dying(record, spec)
    model, meta = model_from_checkpoint(run.folder, prefer=LAST)
    m["params"] = float(sum(p.numel() for p in model.parameters()))
    m |= grad_ratios(record.grad_norms, model)  # {} unless the run recorded its gradient norms
    pipeline = input_pipeline(meta)
    if not segmentation:
        m["train_error"] = _error(model, make_loader(data, "train", pipeline, augment=False, batch_size=500))
        if m["test_error"] is not None:
            m["generalization_gap"] = m["test_error"] - m["train_error"]
        val = make_loader(data, "val", pipeline, batch_size=500)
        record.offsets = offset_lengths(model, lambda net: _error(net, val)) or None  # {}: no deformable layer
        if record.offsets:  # how far the offsets moved the kernel points, over the deformable layers
            m["offset_px"] = statistics.fmean(record.offsets.values())
    if spec.lesion is not None:
        val = make_loader(data, "val", pipeline, batch_size=500)
        record.lesion = lesion_errors(
            model, lambda net: _error(net, val), random_k=spec.lesion.random_k, samples=spec.lesion.samples,
            seed=run.seed,
        )  # fmt: skip
    record.metrics = m
    record.failure = failure(record)
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


def _invalid(e: Expectation, groups: dict[str, list[RunRecord]], spec: ExperimentSpec) -> str:
    """Why a comparison for ``e`` between these runs is no evidence ("" when it is)."""
    reasons = []
    for label, runs in groups.items():
        failed = [r for r in runs if r.failure]
        if failed and not e.about_failure and e.metric != "params":  # a failed run has its parameters all the same
            seeds = ", ".join(str(r.seed) for r in failed)
            which = f"seed{'s' if len(failed) > 1 else ''} {seeds}"
            reasons.append(f"{len(failed)} of {len(runs)} {label} runs failed ({which}: {failed[0].failure})")
        capped = [r for r in runs if r.converged is False]
        if capped and e.metric in FINAL_METRICS:
            cap = spec.config(next(v for v in spec.variants if v.label == label), 0, "runs").epochs
            reasons.append(f"{len(capped)} of {len(runs)} {label} runs hit the {cap}-epoch cap before converging")
    return "; ".join(reasons)


def _compare(
    e: Expectation, groups: dict[str, list[RunRecord]], alpha: float, target: float | None
) -> stats.Comparison | None:
    """The test of ``e`` on its two groups of runs, or None when either has fewer than two measured seeds.
    Steps to ``target``: the log-rank test on runs that recorded their curve (Welch's on the epoch counts of
    results written before curves were recorded, as they were judged then)."""
    b, w = groups[e.better], groups.get(e.worse, [])
    if e.metric == "steps_to_target" and target is not None and all(r.curve is not None for r in (*b, *w)):
        tb, tw = [reach(r.curve or [], target) for r in b], [reach(r.curve or [], target) for r in w]
        if len(tb) < 2 or len(tw) < 2:
            return None
        return stats.compare_times(
            e.better, [t for t, _ in tb], [ok for _, ok in tb], e.worse, [t for t, _ in tw], [ok for _, ok in tw],
            metric=e.metric, alpha=alpha, margin=e.margin,
        )  # fmt: skip
    a = [v for r in b if (v := r.metrics.get(e.metric)) is not None]
    c = [v for r in w if (v := r.metrics.get(e.metric)) is not None] if e.reference is None else [e.reference] * len(a)
    if len(a) < 2 or len(c) < 2:
        return None
    if e.metric in COUNT_METRICS:
        return stats.compare_counts(e.better, a, e.worse, c, metric=e.metric, direction=e.direction, alpha=alpha)
    return stats.compare(e.better, a, e.worse, c, metric=e.metric, direction=e.direction, alpha=alpha, margin=e.margin)


def judge(
    spec: ExperimentSpec, records: Sequence[RunRecord], *, power: bool = True
) -> tuple[list[stats.Comparison | None], stats.Verdict | None]:
    """Each expectation's comparison (None where it could not be made), in the file's order, and the claim's
    verdict, at the file's level (:meth:`ExperimentSpec.alpha`). ``power``: with the minimum detectable effect
    and the seeds that would decide (:func:`cnnlab.experiments.stats.with_power`)."""
    alpha = spec.alpha()
    comparisons: list[stats.Comparison | None] = []
    for e in spec.expect:
        labels = (e.better, e.worse) if e.reference is None else (e.better,)  # a number is no variant
        groups = {lab: [r for r in records if r.label == lab and r.status != "missing"] for lab in labels}
        c = _compare(e, groups, alpha, e.target if e.target is not None else spec.target)
        if c is not None:
            c = replace(c, metric=e.compared())
            reason = _invalid(e, groups, spec)
            c = replace(c, verdict="invalid", reason=reason) if reason else c
            c = stats.with_power(c) if power else c
        comparisons.append(c)
    verdict = stats.overall([c.verdict if c else None for c in comparisons]) if spec.expect else None
    return comparisons, verdict


def collect(
    spec: ExperimentSpec,
    runs_dir: str | Path,
    *,
    partial: bool = False,
    seeds: Sequence[int] | None = None,
    power: bool = True,
) -> ExperimentResult:
    """Measure every variant run of ``spec`` (for ``seeds``, default the file's) under ``runs_dir``, summarise,
    and decide each expectation. Unless ``partial``, every run must have finished (a verdict from some of the
    seeds is a ConfigError)."""
    records = [measure(r, spec) for r in plan(spec, runs_dir, seeds) if r.phase == "variant"]
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
            r.metrics["lesion_step"] = lesion_step(r.lesion)
            r.metrics["lesion_downsampling_excess"] = downsampling_excess(r.lesion)
    summary = summarize(records, [v.label for v in spec.variants])
    comparisons, verdict = judge(spec, records, power=power)
    made = [c for c in comparisons if c is not None]
    return ExperimentResult(spec, records, summary, made, verdict, tuple(spec.seeds if seeds is None else seeds))


def rejudge(spec: ExperimentSpec, payload: dict[str, Any]) -> ExperimentResult:
    """The result that ``payload`` (an experiment's ``results.json``) records, judged again by today's rules
    from its per-run measurements alone: no run folder is read. Records written before a field existed get it
    where it can be derived (the classes and test images from the data set, hence ``failure``)."""
    records = [RunRecord.from_json(r) for r in payload["runs"]]
    seeds = tuple(payload.get("seeds") or spec.seeds)
    runs = {(r.label, r.seed): r for r in plan(spec, "runs", seeds) if r.phase == "variant"}
    for r in records:
        if r.num_classes is None and r.status != "missing":
            data = load_data(runs[r.label, r.seed].config)
            r.num_classes, r.test_images = data.num_classes, len(data.test) if data.test is not None else None
            r.failure = failure(r)
    summary = {v: {m: Summary(**x) for m, x in ms.items()} for v, ms in payload["summary"].items()}
    comparisons, verdict = judge(spec, records)
    made = [c for c in comparisons if c is not None]
    return ExperimentResult(spec, records, summary, made, verdict, seeds, payload.get("rounds"))


def to_json(result: ExperimentResult) -> dict[str, Any]:
    """``results.json`` of an experiment (everything but the meta block and the architecture, which the caller
    adds): what :func:`cnnlab.experiments.report.render` makes ``summary.md`` from."""
    s = result.spec
    return {
        "name": s.name,
        "claim": s.claim,
        "source": asdict(s.source) if s.source else None,
        "description": s.description,
        "expect": [asdict(e) for e in s.expect],
        "fingerprint": s.fingerprint(),
        "seeds": list(result.seeds or s.seeds),
        "alpha": s.alpha(),
        "rounds": result.rounds,
        "verdict": result.verdict,
        "comparisons": [asdict(c) for c in result.comparisons],
        "summary": {v: {m: asdict(x) for m, x in ms.items()} for v, ms in result.summary.items()},
        "runs": [asdict(r) for r in result.records],
    }
