"""An experiment as data: a claim, its source, named variants, a shared recipe, seeds, what should beat what.

A YAML file such as ``experiments/shortcuts.yaml``::

    name: shortcuts
    claim: Projection shortcuts are not essential; B is slightly better than A, C marginally better than B.
    source:
      paper: He et al. 2016, Deep Residual Learning for Image Recognition
      where: Sec. 3.3, Table 3
      figures: "ResNet-34 top-1 error (10-crop): A 25.03, B 24.52, C 24.19"
    data: mnist5k-rts
    seeds: [0, 1, 2]                     # every variant trains once per seed (three or more)
    recipe: {epochs: 10}                 # any `cnnlab train` flag, shared by every variant
    variants:                            # each: a label, a model, its arguments, its own recipe changes
      - {label: A, model: cifar_resnet20, model_kwargs: {shortcut: A}}
      - {label: B, model: cifar_resnet20, model_kwargs: {shortcut: B}, recipe: {lr: 0.05}}
    expect:                              # what the claim predicts, as comparisons that a test decides
      - {better: B, worse: A, metric: test_error}

Instead of ``variants``, ``model`` with a ``grid`` of model arguments makes every combination a variant (the
ablation form). Layers are given by name (``attn_layer: {name: se, reduction: 4}``, ``norm_layer: null``; see
:mod:`cnnlab.layers.named`). ``pretrain`` adds a first phase per seed (a model, its arguments and recipe changes)
whose best checkpoint every variant starts from (``--pretrained``) unless it sets ``pretrained: null``; each
variant sets its own ``freeze``. ``probe: {lesion: {random_k: [1, 2, 4], samples: 10}}`` measures each trained
model with each residual block's branch removed in turn, and with k random blocks removed (Veit et al. 2016),
on the validation split. An expectation with a ``margin`` is a non-inferiority claim ("keeps accuracy at a
fraction of the cost"): it holds when ``better`` is shown to trail ``worse`` by less than the margin (``margin:
0.01`` on an error: one point). A number as ``worse`` compares one variant with that number (Welch's test
against a constant: the one-sample t-test), for a claim about one network (``{better: resnet-56, worse: 0, metric:
lesion_downsampling_excess, direction: higher}``). ``grad_ratio`` and ``grad_ratio_end`` need ``record_grad_norms:
true`` in the recipe: the stem's gradient over the last block's, per weight, at the first and at the last step
(:func:`cnnlab.experiments.probes.grad_ratios`).

What the runs record while they train (:mod:`cnnlab.train.watch`), when an expectation needs it:

* ``target``: a validation accuracy, or a list of them; ``steps_to_target`` is the first step at which a run's
  validation accuracy reached it (an expectation names one with ``target``; default the first), measured every
  ``validate_every`` steps (default: a tenth of an epoch) and at each epoch's end. A run that never reached it is
  censored at its last step, and the comparison is the log-rank test.
* ``dead_threshold``: ``dead`` is 1 for a run whose activations entering the head (the input of the global
  pooling: Szegedy et al. 2017, Sec. 3.3, "only zeros before the average pooling") are zero in at least this
  fraction (default 0.9999: all but one in ten thousand) at the end of training; ``zeros`` is that fraction
  itself. A net that still learns at a high rate can have 99.9% zeros there (inception_resnet_small scaled by
  0.2 at lr 0.4 kept 99.86% while its validation accuracy rose), so "nearly all" has to mean nearly all.

A run whose training accuracy stays near chance, or whose loss diverged, has failed, and an expectation resting on
one is **invalid**, not evidence (:mod:`.collect`), unless it is about failure itself: ``about_failure: true`` in
the expectation (the default for ``diverged``, ``dead`` and ``zeros``). With ``early_stop`` in the recipe (a
patience) the runs train to convergence under an epoch cap, and an expectation on a final error or IoU whose runs
hit the cap before converging is invalid too.

``until_decided: {seeds_per_round: 2, max_seeds: 16}`` is the plan of a sequential experiment (``cnnlab
experiment run FILE --until-decided``): ``seeds`` are the first round, each further round adds
``seeds_per_round`` new seeds until ``max_seeds``, and every verdict is decided at ``ALPHA`` divided among the
planned looks (:func:`cnnlab.experiments.stats.look_alpha`), whether the experiment runs them all or not.

Every mistake in a file (an unknown key, model, layer or metric, a variant that does not build, an expectation
naming no variant) is a :class:`~cnnlab.errors.ConfigError` with the nearest names, raised before any training.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from cnnlab.data import is_segmentation
from cnnlab.errors import CnnlabError, ConfigError, suggest
from cnnlab.experiments.stats import ALPHA, Direction, look_alpha
from cnnlab.registry import list_models, meta_model
from cnnlab.train.config import FIRST_RECIPE, TrainConfig, config_from_dict, load_yaml

SPEC_KEYS = (
    "name", "description", "claim", "source", "data", "seeds", "recipe", "variants", "model", "grid", "expect",
    "pretrain", "probe", "target", "validate_every", "dead_threshold", "until_decided",
)  # fmt: skip
SOURCE_KEYS = ("paper", "where", "figures")
VARIANT_KEYS = ("label", "model", "model_kwargs", "recipe")
EXPECT_KEYS = ("better", "worse", "metric", "direction", "margin", "about_failure", "target")
PLAN_KEYS = ("seeds_per_round", "max_seeds")
PRETRAIN_KEYS = ("model", "model_kwargs", "recipe")
LESION_KEYS = ("random_k", "samples")
RUN_SET = ("model", "model_kwargs", "seed", "out_dir", "run_name", "resume", "progress")  # the runner sets these
DEFAULT_SEEDS = (0, 1, 2)
DEAD_THRESHOLD = 0.9999  # a run is dead when this fraction of the activations entering its head is zero
VALIDATIONS_PER_EPOCH = 10  # the default validate_every: a tenth of an epoch

METRICS: dict[str, Direction] = {
    "train_error": "lower",  # final weights, eval mode, un-augmented training images
    "val_error": "lower",  # final weights, validation split
    "best_val_error": "lower",  # the best epoch's validation error
    "test_error": "lower",  # final weights, the test split (evaluated once)
    "generalization_gap": "lower",  # test_error - train_error (Lin et al. 2014: GAP is "a structural regularizer")
    "best_test_error": "lower",  # the best-on-validation weights, the test split (evaluated once)
    "steps_to_target": "lower",  # optimizer steps until the validation accuracy (pixel accuracy) reaches ``target``
    "diverged": "lower",  # 1 when the loss became NaN or infinite, else 0
    "dead": "lower",  # 1 when the activations entering the head are (nearly) all zero at the end, else 0
    "zeros": "lower",  # the fraction of the activations entering the head that are zero, at the end of training
    "lesion_error": "lower",  # mean validation error over removing each residual branch in turn
    "lesion_step": "lower",  # the lesion curve's steepest rise: error added per block removed, between its points
    "lesion_downsampling_excess": "higher",  # a downsampling block's lesion error minus its stage's other blocks'
    "grad_ratio": "higher",  # first step: the stem's gradient over the last block's, per weight (below 1: shrinking)
    "grad_ratio_end": "higher",  # the same at the last step
    "params": "lower",
    # segmentation runs (mean IoU: the final weights on the test split unless named best)
    "test_miou": "higher",
    "test_small_iou": "higher",  # mean IoU over the pixels of the small objects (mnist5k-seg's size buckets)
    "test_large_iou": "higher",
    "best_val_miou": "higher",  # the best epoch's validation mean IoU (what chose best.pt)
}
"""What an expectation can compare, and which way is better by default."""

COUNT_METRICS = ("diverged", "dead")  # 0/1 outcomes: Fisher's exact test
FAILURE_METRICS = ("diverged", "dead", "zeros")  # about failure itself: failed runs are their evidence
WATCH_METRICS = ("steps_to_target", "dead", "zeros")  # recorded while training (cnnlab.train.watch)
FINAL_METRICS = (
    "train_error", "val_error", "best_val_error", "test_error", "best_test_error", "lesion_error", "test_miou",
    "test_small_iou", "test_large_iou", "best_val_miou", "generalization_gap", "lesion_step",
    "lesion_downsampling_excess",
)  # fmt: skip
"""Metrics of the trained network at the end: with early stopping, they need runs that converged."""

SEGMENTATION_METRICS = ("test_miou", "test_small_iou", "test_large_iou", "best_val_miou")
LESION_METRICS = ("lesion_error", "lesion_step", "lesion_downsampling_excess")  # need the lesion probe
GRAD_METRICS = ("grad_ratio", "grad_ratio_end")  # need the gradient norms recorded (record_grad_norms)
CLASSIFICATION_METRICS = (
    "train_error", "val_error", "best_val_error", "test_error", "best_test_error", "generalization_gap",
    *LESION_METRICS,
)  # fmt: skip
TASK_METRICS = (*SEGMENTATION_METRICS, *CLASSIFICATION_METRICS)
"""Metrics of one task only (the others, steps_to_target with the pixel accuracy of a segmentation run,
divergence and parameters, apply to both)."""


def is_fraction(metric: str) -> bool:
    """Whether ``metric`` is a fraction in [0, 1] that reports show in percent (errors, IoUs and the gap between
    test and training error)."""
    return metric.endswith("error") or metric.endswith("iou") or metric == "generalization_gap"


@dataclass(frozen=True)
class Source:
    """Where a claim comes from: the paper, the place in it, and its own numbers."""

    paper: str
    where: str = ""
    figures: str = ""

    def cite(self) -> str:
        return ", ".join(p for p in (self.paper, self.where) if p)


@dataclass(frozen=True)
class Variant:
    """One arm of the comparison: a model, its arguments (plain data) and changes to the shared recipe."""

    label: str
    model: str
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    recipe: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Expectation:
    """``better`` should have a ``direction`` value of ``metric`` than ``worse``."""

    better: str
    worse: str
    metric: str
    direction: Direction
    margin: float = 0.0  # > 0: a non-inferiority claim, ``better`` may trail ``worse`` by less than this
    about_failure: bool = False  # the claim is about failing (diverging, dying): failed runs are its evidence
    target: float | None = None  # steps_to_target: the validation accuracy it counts steps to
    reference: float | None = None  # ``worse`` is this number, not a variant: ``better``'s values against it

    def text(self) -> str:
        op = "<" if self.direction == "lower" else ">"
        metric = f"{self.metric} ({100 * self.target:.4g}%)" if self.target is not None else self.metric
        if not self.margin:
            return f"{self.better} {op} {self.worse} in {metric}"
        limit = f"{100 * self.margin:.3g} points" if is_fraction(self.metric) else f"{self.margin:g}"
        return f"{self.better} {op} {self.worse} {'+' if op == '<' else '-'} {limit} in {metric}"

    def compared(self) -> str:
        """The metric as its comparison names it: ``steps_to_0.95`` for a target named in the expectation."""
        return f"steps_to_{self.target:g}" if self.target is not None else self.metric

    def key(self) -> tuple[str, str, str]:
        """What identifies its comparison among an experiment's (the better, worse and compared metric)."""
        return self.better, self.worse, self.compared()


@dataclass(frozen=True)
class Plan:
    """A sequential experiment: after the file's seeds, rounds of ``seeds_per_round`` more until ``max_seeds``."""

    seeds_per_round: int
    max_seeds: int

    def looks(self, first: int) -> int:
        """How many times the seeds are looked at when every planned round runs (``first`` seeds to start)."""
        return 1 + math.ceil(max(0, self.max_seeds - first) / self.seeds_per_round)

    def rounds(self, seeds: Sequence[int], max_seeds: int | None = None) -> list[tuple[int, ...]]:
        """The seeds of each look, cumulative: ``seeds``, then the next unused integers ``seeds_per_round`` at a
        time, up to ``max_seeds`` (the plan's own, or fewer)."""
        cap = self.max_seeds if max_seeds is None else max_seeds
        out, current, candidate = [tuple(seeds)], list(seeds), 0
        while len(current) < cap:
            added = 0
            while added < self.seeds_per_round and len(current) < cap:
                if candidate not in current:
                    current.append(candidate)
                    added += 1
                candidate += 1
            out.append(tuple(current))
        return out


@dataclass(frozen=True)
class Lesion:
    """Remove residual branches after training: each in turn, and ``samples`` random sets of each size k."""

    random_k: tuple[int, ...] = ()
    samples: int = 10


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    variants: tuple[Variant, ...]
    recipe: Mapping[str, Any]  # TrainConfig keys shared by every run (checked)
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    claim: str = ""
    source: Source | None = None
    description: str = ""
    expect: tuple[Expectation, ...] = ()
    pretrain: Variant | None = None  # label "pretrain"
    lesion: Lesion | None = None
    targets: tuple[float, ...] = ()  # validation accuracies for steps_to_target (the file's ``target``)
    validate_every: int | None = None  # steps between validations (None: a tenth of an epoch, where needed)
    dead_threshold: float | None = None  # None: DEAD_THRESHOLD
    plan: Plan | None = None  # until_decided

    @property
    def target(self) -> float | None:
        """The first target (what an expectation on steps_to_target counts to unless it names another)."""
        return self.targets[0] if self.targets else None

    def alpha(self) -> float:
        """The level of every verdict: ``ALPHA``, divided among the planned looks of a sequential experiment."""
        return look_alpha(self.plan.looks(len(self.seeds))) if self.plan else ALPHA

    def watches(self) -> bool:
        """Whether the runs validate within epochs (:mod:`cnnlab.train.watch`): for a target, a dead or zeros
        metric, or a ``validate_every`` the file sets."""
        return (
            bool(self.targets) or self.validate_every is not None or any(e.metric in WATCH_METRICS for e in self.expect)
        )

    def config(self, variant: Variant, seed: int, runs_dir: str | Path) -> TrainConfig:
        """The TrainConfig of one run: :data:`~cnnlab.train.config.FIRST_RECIPE` (the recipe every experiment was
        run with, whatever today's defaults), the shared recipe, the variant's changes, its model, seed and
        folder."""
        changes = dict(FIRST_RECIPE) | dict(self.recipe) | dict(variant.recipe)
        if self.pretrain is not None and variant is not self.pretrain and "pretrained" not in variant.recipe:
            changes["pretrained"] = str(Path(runs_dir) / run_name(self.pretrain.label, seed) / "best.pt")
        return config_from_dict(
            changes | {"model": variant.model, "model_kwargs": dict(variant.model_kwargs), "seed": seed,
                       "out_dir": str(runs_dir), "run_name": run_name(variant.label, seed), "progress": False},
        )  # fmt: skip

    def with_recipe(self, **changes: Any) -> ExperimentSpec:
        """The same experiment with ``changes`` to every run's recipe, the variants' own settings included (a
        quick try with ``epochs=1`` shortens every run)."""
        config_from_dict(dict(self.recipe) | changes)  # checked

        def changed(v: Variant) -> Variant:
            return replace(v, recipe={k: x for k, x in v.recipe.items() if k not in changes})

        pre = changed(self.pretrain) if self.pretrain else None
        return replace(
            self, recipe=dict(self.recipe) | changes, variants=tuple(map(changed, self.variants)), pretrain=pre
        )

    def with_seeds(self, seeds: Sequence[int]) -> ExperimentSpec:
        spec = replace(self, seeds=_seeds(list(seeds), "--seeds"))
        _check(spec, "--seeds")
        return spec

    def fingerprint(self) -> dict[str, Any]:
        """What decides the experiment's numbers, as plain data: a results folder made from another one is stale."""
        return {
            "recipe": dict(self.recipe),
            "seeds": list(self.seeds),
            "variants": [asdict(v) for v in self.variants],
            "pretrain": asdict(self.pretrain) if self.pretrain else None,
            "lesion": asdict(self.lesion) if self.lesion else None,
            "target": self._target_as_written(),
            "expect": [_as_written(e) for e in self.expect],
        } | {k: v for k, v in self._added().items() if v is not None}

    def _target_as_written(self) -> float | list[float] | None:
        return None if not self.targets else self.targets[0] if len(self.targets) == 1 else list(self.targets)

    def _added(self) -> dict[str, Any]:
        """Keys added after results were committed: in the fingerprint only when set, so that the fingerprint
        of a file that does not use them is the one its committed results carry."""
        return {
            "validate_every": self.validate_every,
            "dead_threshold": self.dead_threshold,
            "until_decided": asdict(self.plan) if self.plan else None,
        }


def _as_written(e: Expectation) -> dict[str, Any]:
    """An expectation in the fingerprint: the keys added later only where they differ from their default."""
    default = {"margin": 0.0, "about_failure": e.metric in FAILURE_METRICS, "target": None, "reference": None}
    return {k: v for k, v in asdict(e).items() if k not in default or v != default[k]}


def run_name(label: str, seed: int) -> str:
    """The run folder of (label, seed): ``"resnet-56-seed0"``; spaces and ``=`` become ``_`` and ``-``."""
    safe = "".join(c if c.isalnum() or c in "-_.," else "_" for c in label.replace("=", "-"))
    return f"{safe}-seed{seed}"


def variant_label(kwargs: Mapping[str, Any]) -> str:
    """``{"shortcut": "A", "attn_layer": None}`` -> ``"shortcut=A attn_layer=none"``."""

    def text(v: Any) -> str:
        if v is None:
            return "none"
        if isinstance(v, Mapping):
            return ",".join(f"{k}:{w}" for k, w in v.items())
        return str(v)

    return " ".join(f"{k}={text(v)}" for k, v in kwargs.items()) or "default"


def _keys(obj: Any, allowed: Sequence[str], where: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise ConfigError(f"{where} must be a mapping with keys {', '.join(allowed)}, got {obj!r}")
    for k in obj:
        if k not in allowed:
            raise ConfigError(f"{where}: unknown key {k!r}.{suggest(str(k), allowed)} Keys: {', '.join(allowed)}")
    return obj


def _recipe(obj: Any, where: str) -> dict[str, Any]:
    recipe = dict(_keys(obj or {}, list(obj or {}), where))
    for key in RUN_SET:
        if key in recipe:
            raise ConfigError(f"{where} may not set {key!r}: the experiment sets it for each run")
    try:
        config_from_dict(recipe)  # every key and value checked where it is written
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e
    return recipe


def _variant(obj: Any, where: str, *, label: str | None = None) -> Variant:
    d = _keys(obj, PRETRAIN_KEYS if label else VARIANT_KEYS, where)
    model = d.get("model")
    if model not in list_models():
        raise ConfigError(
            f"{where}: 'model' must name a registered model, got {model!r}.{suggest(str(model), list_models())}"
        )
    kwargs = d.get("model_kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"{where}: model_kwargs must be a mapping, got {kwargs!r}")
    name = label or d.get("label")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: every variant needs a 'label' (its name in tables and comparisons)")
    return Variant(name, model, dict(kwargs), _recipe(d.get("recipe"), f"{where} recipe"))


def _grid_variants(obj: Mapping[str, Any], source: str) -> list[Variant]:
    model, grid = obj.get("model"), obj.get("grid") or {}
    if not isinstance(grid, Mapping) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{source}: 'grid' must map model arguments to non-empty lists of values, got {grid!r}")
    keys = list(grid)
    combos = itertools.product(*(grid[k] for k in keys)) if keys else [()]
    return [
        _variant({"label": variant_label(kw), "model": model, "model_kwargs": kw}, f"{source}: grid")
        for kw in (dict(zip(keys, values, strict=True)) for values in combos)
    ]


def _seeds(seeds: Any, where: str) -> tuple[int, ...]:
    ints = isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    if not ints or len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ConfigError(
            f"{where}: 'seeds' must be a list of at least two distinct integers >= 0 (three or more for a verdict), "
            f"got {seeds!r}"
        )
    return tuple(seeds)


def _positive_ints(value: Any, where: str) -> tuple[int, ...]:
    ok = isinstance(value, list | tuple) and all(
        isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in value
    )
    if not ok:
        raise ConfigError(f"{where} must be a list of integers >= 1, got {value!r}")
    return tuple(value)


def _expectation(obj: Any, labels: Sequence[str], targets: Sequence[float], where: str) -> Expectation:
    d = dict(_keys(obj, EXPECT_KEYS, where))
    if d.get("better") == d.get("worse"):
        raise ConfigError(f"{where}: better and worse name the same variant {d.get('better')!r}")
    reference = d.get("worse") if d.get("worse") not in labels and _is_real_number(d.get("worse")) else None
    if reference is not None:  # one variant against a number: its values against that constant
        if d.get("metric") in COUNT_METRICS or d.get("metric") == "steps_to_target":
            raise ConfigError(f"{where}: a number as 'worse' needs a measured metric (Welch's test against it), got "
                              f"{d.get('metric')!r}")  # fmt: skip
        d["worse"] = f"{reference:g}"
    for side in ("better", "worse") if reference is None else ("better",):
        if d.get(side) not in labels:
            raise ConfigError(f"{where}: {side} {d.get(side)!r} is not a variant.{suggest(str(d.get(side)), labels)}")
    metric = d.get("metric")
    if metric not in METRICS:
        raise ConfigError(
            f"{where}: unknown metric {metric!r}.{suggest(str(metric), METRICS)} Metrics: {', '.join(METRICS)}"
        )
    direction = d.get("direction", METRICS[metric])
    if direction not in ("lower", "higher"):
        raise ConfigError(f"{where}: direction must be 'lower' or 'higher', got {direction!r}")
    margin = d.get("margin", 0.0)
    if isinstance(margin, bool) or not isinstance(margin, int | float) or margin < 0:
        raise ConfigError(f"{where}: margin must be a number >= 0 (in the metric's units), got {margin!r}")
    if margin and metric in COUNT_METRICS:
        raise ConfigError(f"{where}: a margin needs a measured metric; {metric} is a count (Fisher's test)")
    about_failure = d.get("about_failure", metric in FAILURE_METRICS)
    if not isinstance(about_failure, bool):
        raise ConfigError(f"{where}: about_failure must be true or false, got {about_failure!r}")
    target = d.get("target")
    if target is not None and (metric != "steps_to_target" or target not in targets):
        raise ConfigError(
            f"{where}: 'target' names one of the file's targets {list(targets)} for the metric steps_to_target, "
            f"got {target!r} for {metric}"
        )
    return Expectation(
        d["better"], d["worse"], metric, direction, float(margin), about_failure,
        float(target) if target is not None else None, float(reference) if reference is not None else None,
    )  # fmt: skip


def _is_real_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _is_fraction(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 < value <= 1


def _targets(value: Any, source: str) -> tuple[float, ...]:
    values = value if isinstance(value, list) else [] if value is None else [value]
    if not all(_is_fraction(v) for v in values) or (isinstance(value, list) and not value):
        raise ConfigError(f"{source}: 'target' is a validation accuracy in (0, 1], or a list of them, got {value!r}")
    return tuple(float(v) for v in values)


def spec_from_dict(obj: Mapping[str, Any], *, source: str = "the experiment file") -> ExperimentSpec:
    """Check and build an :class:`ExperimentSpec`; every mistake is a ConfigError naming ``source``."""
    _keys(obj, SPEC_KEYS, source)
    if "variants" in obj and ("grid" in obj or "model" in obj):
        raise ConfigError(f"{source}: give either 'variants' or 'model' with 'grid', not both")
    if "variants" in obj:
        if not isinstance(obj["variants"], list) or not obj["variants"]:
            raise ConfigError(f"{source}: 'variants' must be a non-empty list")
        variants = [_variant(v, f"{source}: variant {i + 1}") for i, v in enumerate(obj["variants"])]
    else:
        variants = _grid_variants(obj, source)
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{source}: variant labels must be distinct, got {labels}")
    seeds = _seeds(obj.get("seeds", list(DEFAULT_SEEDS)), source)
    if "pretrain" in labels:
        raise ConfigError(f"{source}: 'pretrain' is the label of the pretraining phase; give the variant another one")
    recipe = _recipe(obj.get("recipe"), f"{source}: recipe")
    if "data" in obj:
        if "data" in recipe:
            raise ConfigError(f"{source}: the data set is given twice ('data' and 'recipe: data'); keep one")
        recipe["data"] = obj["data"]
    src = obj.get("source")
    if src is not None and not (isinstance(src, Mapping) and isinstance(src.get("paper"), str) and src["paper"]):
        raise ConfigError(f"{source}: 'source' needs at least 'paper' (and 'where', 'figures'), got {src!r}")
    pretrain = _variant(obj["pretrain"], f"{source}: pretrain", label="pretrain") if obj.get("pretrain") else None
    probe = _keys(obj.get("probe") or {}, ("lesion",), f"{source}: probe")
    lesion = None
    if "lesion" in probe:
        d = _keys(probe["lesion"] or {}, LESION_KEYS, f"{source}: probe lesion")
        (samples,) = _positive_ints([d.get("samples", 10)], f"{source}: probe lesion samples")
        lesion = Lesion(_positive_ints(d.get("random_k", []), f"{source}: probe lesion random_k"), samples)
    targets = _targets(obj.get("target"), source)
    every = obj.get("validate_every")
    if every is not None:
        (every,) = _positive_ints([every], f"{source}: validate_every (optimizer steps between validations)")
    dead = obj.get("dead_threshold")
    if dead is not None and not _is_fraction(dead):
        raise ConfigError(f"{source}: 'dead_threshold' is a fraction of zero activations in (0, 1], got {dead!r}")
    plan = None
    if obj.get("until_decided") is not None:
        d = _keys(obj["until_decided"], PLAN_KEYS, f"{source}: until_decided")
        per, most = _positive_ints(
            [d.get("seeds_per_round"), d.get("max_seeds")], f"{source}: until_decided seeds_per_round and max_seeds"
        )
        if most < len(seeds):
            raise ConfigError(f"{source}: until_decided max_seeds ({most}) is below the first round's {len(seeds)} "
                              "seeds")  # fmt: skip
        plan = Plan(per, most)
    spec = ExperimentSpec(
        name=str(obj.get("name") or Path(source).stem),
        variants=tuple(variants),
        recipe=recipe,
        seeds=seeds,
        claim=str(obj.get("claim") or ""),
        source=Source(**_keys(src, SOURCE_KEYS, f"{source}: source")) if src else None,
        description=str(obj.get("description") or ""),
        expect=tuple(
            _expectation(e, labels, targets, f"{source}: expect {i + 1}") for i, e in enumerate(obj.get("expect") or [])
        ),
        pretrain=pretrain,
        lesion=lesion,
        targets=targets,
        validate_every=every,
        dead_threshold=float(dead) if dead is not None else None,
        plan=plan,
    )
    _check(spec, source)
    return spec


def _check(spec: ExperimentSpec, source: str) -> None:
    """Fail now, not after an hour of training: every run's config is valid and every variant builds."""
    metrics = {e.metric for e in spec.expect}
    unprobed = sorted(metrics & set(LESION_METRICS)) if spec.lesion is None else []
    if unprobed:
        raise ConfigError(f"{source}: the metric {unprobed[0]} needs 'probe: {{lesion: {{}}}}'")
    if metrics & set(GRAD_METRICS) and not spec.recipe.get("record_grad_norms"):
        raise ConfigError(f"{source}: the metric {sorted(metrics & set(GRAD_METRICS))[0]} needs 'record_grad_norms: "
                          "true' in the recipe")  # fmt: skip
    if "steps_to_target" in metrics and spec.target is None:
        raise ConfigError(f"{source}: the metric steps_to_target needs a 'target' validation accuracy")
    if spec.watches() and "val_fraction" in spec.recipe and spec.recipe["val_fraction"] == 0:
        raise ConfigError(f"{source}: {', '.join(sorted(metrics & set(WATCH_METRICS))) or 'validate_every'} "
                          "measures the validation split; val_fraction must be > 0")  # fmt: skip
    folders: dict[str, str] = {}
    for v in (*((spec.pretrain,) if spec.pretrain else ()), *spec.variants):
        try:
            config = spec.config(v, spec.seeds[0], "runs")
            meta_model(v.model, v.model_kwargs)
        except CnnlabError as e:
            raise ConfigError(f"{source}: variant {v.label!r}: {e}") from e
        segmentation = is_segmentation(config.data)
        wrong = sorted(m for m in metrics if (m in SEGMENTATION_METRICS) != segmentation and m in TASK_METRICS)
        if wrong or (segmentation and spec.lesion is not None):
            task, other = ("segmentation", "classifier") if segmentation else ("classification", "segmentation")
            what = f"the metric(s) {', '.join(wrong)}" if wrong else "the lesion probe"
            raise ConfigError(f"{source}: variant {v.label!r} is a {task} run on {config.data}; {what} belong(s) "
                              f"to {other} runs")  # fmt: skip
        if spec.lesion is not None and config.val_fraction == 0:
            raise ConfigError(f"{source}: variant {v.label!r}: the lesion probe measures the validation split; "
                              "val_fraction must be > 0")  # fmt: skip
        other = folders.setdefault(str(config.run_name), v.label)
        if other != v.label:
            raise ConfigError(f"{source}: variants {other!r} and {v.label!r} would share run folders "
                              f"({config.run_name}); give them labels that differ in letters or digits")  # fmt: skip


def load_spec(path: str | Path) -> ExperimentSpec:
    return spec_from_dict(load_yaml(path), source=str(path))
