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
on the validation split. ``target`` is the validation accuracy that ``steps_to_target`` counts steps to. An
expectation with a ``margin`` is a non-inferiority claim ("keeps accuracy at a fraction of the cost"): it holds
when ``better`` is shown to trail ``worse`` by less than the margin (``margin: 0.01`` on an error: one point).

Every mistake in a file (an unknown key, model, layer or metric, a variant that does not build, an expectation
naming no variant) is a :class:`~cnnlab.errors.ConfigError` with the nearest names, raised before any training.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from cnnlab.data import is_segmentation
from cnnlab.errors import CnnlabError, ConfigError, suggest
from cnnlab.experiments.stats import Direction
from cnnlab.registry import list_models, meta_model
from cnnlab.train.config import FIRST_RECIPE, TrainConfig, config_from_dict, load_yaml

SPEC_KEYS = (
    "name", "description", "claim", "source", "data", "seeds", "recipe", "variants", "model", "grid", "expect",
    "pretrain", "probe", "target",
)  # fmt: skip
SOURCE_KEYS = ("paper", "where", "figures")
VARIANT_KEYS = ("label", "model", "model_kwargs", "recipe")
EXPECT_KEYS = ("better", "worse", "metric", "direction", "margin")
PRETRAIN_KEYS = ("model", "model_kwargs", "recipe")
LESION_KEYS = ("random_k", "samples")
RUN_SET = ("model", "model_kwargs", "seed", "out_dir", "run_name", "resume", "progress")  # the runner sets these
DEFAULT_SEEDS = (0, 1, 2)

METRICS: dict[str, Direction] = {
    "train_error": "lower",  # final weights, eval mode, un-augmented training images
    "val_error": "lower",  # final weights, validation split
    "best_val_error": "lower",  # the best epoch's validation error
    "test_error": "lower",  # final weights, the test split (evaluated once)
    "best_test_error": "lower",  # the best-on-validation weights, the test split (evaluated once)
    "steps_to_target": "lower",  # optimizer steps until the validation accuracy (pixel accuracy) reaches ``target``
    "diverged": "lower",  # 1 when the loss became NaN or infinite, else 0
    "lesion_error": "lower",  # mean validation error over removing each residual branch in turn
    "params": "lower",
    # segmentation runs (mean IoU: the final weights on the test split unless named best)
    "test_miou": "higher",
    "test_small_iou": "higher",  # mean IoU over the pixels of the small objects (mnist5k-seg's size buckets)
    "test_large_iou": "higher",
    "best_val_miou": "higher",  # the best epoch's validation mean IoU (what chose best.pt)
}
"""What an expectation can compare, and which way is better by default."""

SEGMENTATION_METRICS = ("test_miou", "test_small_iou", "test_large_iou", "best_val_miou")
CLASSIFICATION_METRICS = ("train_error", "val_error", "best_val_error", "test_error", "best_test_error", "lesion_error")
TASK_METRICS = (*SEGMENTATION_METRICS, *CLASSIFICATION_METRICS)
"""Metrics of one task only (the others, steps_to_target with the pixel accuracy of a segmentation run,
divergence and parameters, apply to both)."""


def is_fraction(metric: str) -> bool:
    """Whether ``metric`` is a fraction in [0, 1] that reports show in percent (errors and IoUs)."""
    return metric.endswith("error") or metric.endswith("iou")


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

    def text(self) -> str:
        op = "<" if self.direction == "lower" else ">"
        if not self.margin:
            return f"{self.better} {op} {self.worse} in {self.metric}"
        limit = f"{100 * self.margin:.3g} points" if is_fraction(self.metric) else f"{self.margin:g}"
        return f"{self.better} {op} {self.worse} {'+' if op == '<' else '-'} {limit} in {self.metric}"


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
    target: float | None = None  # validation accuracy for steps_to_target

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
            "target": self.target,
            "expect": [{k: v for k, v in asdict(e).items() if k != "margin" or v} for e in self.expect],
        }


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


def _expectation(obj: Any, labels: Sequence[str], where: str) -> Expectation:
    d = _keys(obj, EXPECT_KEYS, where)
    if d.get("better") == d.get("worse"):
        raise ConfigError(f"{where}: better and worse name the same variant {d.get('better')!r}")
    for side in ("better", "worse"):
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
    if margin and metric == "diverged":
        raise ConfigError(f"{where}: a margin needs a measured metric; divergence is a count (Fisher's test)")
    return Expectation(d["better"], d["worse"], metric, direction, float(margin))


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
    target = obj.get("target")
    if target is not None and (isinstance(target, bool) or not (isinstance(target, int | float) and 0 < target <= 1)):
        raise ConfigError(f"{source}: 'target' is a validation accuracy in (0, 1], got {target!r}")
    spec = ExperimentSpec(
        name=str(obj.get("name") or Path(source).stem),
        variants=tuple(variants),
        recipe=recipe,
        seeds=seeds,
        claim=str(obj.get("claim") or ""),
        source=Source(**_keys(src, SOURCE_KEYS, f"{source}: source")) if src else None,
        description=str(obj.get("description") or ""),
        expect=tuple(
            _expectation(e, labels, f"{source}: expect {i + 1}") for i, e in enumerate(obj.get("expect") or [])
        ),
        pretrain=pretrain,
        lesion=lesion,
        target=float(target) if target is not None else None,
    )
    _check(spec, source)
    return spec


def _check(spec: ExperimentSpec, source: str) -> None:
    """Fail now, not after an hour of training: every run's config is valid and every variant builds."""
    metrics = {e.metric for e in spec.expect}
    if "lesion_error" in metrics and spec.lesion is None:
        raise ConfigError(f"{source}: the metric lesion_error needs 'probe: {{lesion: {{}}}}'")
    if "steps_to_target" in metrics and spec.target is None:
        raise ConfigError(f"{source}: the metric steps_to_target needs a 'target' validation accuracy")
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
