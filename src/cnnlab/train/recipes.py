"""Named recipes: plain ``cnnlab train`` YAML configs in the checkout's ``recipes/`` folder, for real data.

``cnnlab train --recipe NAME`` starts from ``recipes/NAME.yaml`` (``--config`` and the flags override it);
``--recipe list`` lists them. Each file says in its leading comments what it reproduces, the source's figure (the
source's, not measured by cnnlab) and the expected wall time; its first comment line is its summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError, suggest
from cnnlab.train.config import load_yaml

RECIPES = Path(__file__).resolve().parents[3] / "recipes"
"""The checkout's ``recipes/`` folder (as the experiments' specs live in ``experiments/``)."""


def recipe_names() -> list[str]:
    """The recipes in :data:`RECIPES`, sorted (none when cnnlab is installed without its checkout)."""
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def recipe_path(name: str) -> Path:
    """``recipes/NAME.yaml``, or ``name`` itself when it is a YAML file; a ConfigError lists the recipes."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    names = recipe_names()
    if name not in names:
        where = f"recipes: {', '.join(names)}" if names else f"no recipes found in {RECIPES}"
        raise ConfigError(f"unknown recipe {name!r}.{suggest(name, names)} {where} (`cnnlab train --recipe list`).")
    return RECIPES / f"{name}.yaml"


def load_recipe(name: str) -> dict[str, Any]:
    """The config keys of a recipe (a name from :func:`recipe_names` or a YAML file)."""
    return load_yaml(recipe_path(name))


def recipe_summary(name: str) -> str:
    """The first comment line of a recipe's file: what it reproduces and the source's figure."""
    for line in recipe_path(name).read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


__all__ = ["RECIPES", "load_recipe", "recipe_names", "recipe_path", "recipe_summary"]
