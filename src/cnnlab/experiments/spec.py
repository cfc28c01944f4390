"""An ablation as data: one family, a grid of variants, one training recipe, several seeds.

A YAML file such as ``experiments/shortcuts.yaml``::

    name: shortcuts
    model: cifar_resnet20          # the family's registered model
    data: mnist5k
    seeds: [0, 1]                  # every variant trains once per seed, with the same seeds
    recipe: {epochs: 4}            # TrainConfig keys (the flags of ``cnnlab train``), the same for every variant
    grid:                          # model arguments: every combination is a variant
      shortcut: [A, B, C]

Model arguments that take a layer (names ending in ``_layer``) are given by name, since a YAML file holds no
classes: ``attn_layer: se`` or ``attn_layer: {name: se, reduction: 4}`` (see :mod:`cnnlab.layers.named`);
``null`` leaves the layer out.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import CnnlabError, ConfigError, suggest
from cnnlab.registry import build_model, list_models
from cnnlab.train.config import TrainConfig, config_from_dict, load_yaml

SPEC_KEYS = ("name", "description", "model", "data", "seeds", "recipe", "grid")


def variant_label(kwargs: Mapping[str, Any]) -> str:
    """``{"shortcut": "A", "attn_layer": None}`` -> ``"shortcut=A attn_layer=none"``."""

    def text(v: Any) -> str:
        if v is None:
            return "none"
        if isinstance(v, Mapping):
            return ",".join(f"{k}:{w}" for k, w in v.items())
        return str(v)

    return " ".join(f"{k}={text(v)}" for k, v in kwargs.items()) or "default"


@dataclass(frozen=True)
class Variant:
    label: str  # what the results table calls it
    model: str
    model_kwargs: Mapping[str, Any]  # as written in the file (plain types)


@dataclass(frozen=True)
class AblationSpec:
    name: str
    model: str
    grid: Mapping[str, Sequence[Any]]
    seeds: tuple[int, ...] = (0, 1)  # at least two, so each variant has a spread
    recipe: TrainConfig = field(default_factory=TrainConfig)
    description: str = ""

    def with_recipe(self, **changes: Any) -> AblationSpec:
        return dataclasses.replace(self, recipe=self.recipe.replace(**changes))

    def variants(self) -> list[Variant]:
        keys = list(self.grid)
        combos = itertools.product(*(self.grid[k] for k in keys)) if keys else [()]
        out = []
        for values in combos:
            kwargs = dict(zip(keys, values, strict=True))
            out.append(Variant(variant_label(kwargs), self.model, kwargs))
        return out


def spec_from_dict(obj: Mapping[str, Any], *, source: str = "the experiment file") -> AblationSpec:
    """Check and build an :class:`AblationSpec`; every mistake is a ConfigError naming ``source``."""
    unknown = [k for k in obj if k not in SPEC_KEYS]
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {unknown[0]!r}.{suggest(unknown[0], SPEC_KEYS)} Keys: {', '.join(SPEC_KEYS)}"
        )
    model = obj.get("model")
    if model not in list_models():
        raise ConfigError(
            f"{source}: 'model' must name a registered model, got {model!r}.{suggest(str(model), list_models())}"
        )
    grid = obj.get("grid") or {}
    if not isinstance(grid, Mapping) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{source}: 'grid' must map model arguments to non-empty lists of values, got {grid!r}")
    seeds = obj.get("seeds", [0, 1])
    if not isinstance(seeds, list) or len(seeds) < 2 or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"{source}: 'seeds' must be a list of at least two integers, got {seeds!r}")
    recipe = dict(obj.get("recipe") or {})
    for key in ("model", "model_kwargs", "seed"):
        if key in recipe:
            raise ConfigError(f"{source}: the recipe may not set {key!r}; the experiment sets it for each run")
    if "data" in obj:
        recipe["data"] = obj["data"]
    spec = AblationSpec(
        name=str(obj.get("name") or "ablation"),
        model=model,
        grid={k: list(v) for k, v in grid.items()},
        seeds=tuple(seeds),
        recipe=config_from_dict(recipe),
        description=str(obj.get("description") or ""),
    )
    for v in spec.variants():  # fail now, not after an hour of training: every variant builds (no weights)
        try:
            with torch.device("meta"):
                build_model(v.model, v.model_kwargs)
        except CnnlabError as e:
            raise ConfigError(f"{source}: variant {v.label!r}: {e}") from e
    return spec


def load_spec(path: str | Path) -> AblationSpec:
    return spec_from_dict(load_yaml(path), source=str(path))
