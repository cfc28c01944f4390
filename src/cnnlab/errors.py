"""cnnlab's own error and warning types, and the small checks that raise them.

Every mistake a user can make (an unknown model, a bad argument, an input of the wrong shape, a checkpoint
that does not fit) raises one of these with a message that says what was expected. Each subclasses the
built-in type that fits, so ``except ValueError`` or ``except KeyError`` keep working.

May import: nothing from cnnlab.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class CnnlabError(Exception):
    """Base class of every error that cnnlab raises on purpose."""


class UnknownModelError(CnnlabError, KeyError):
    """A model name that the registry does not hold."""

    def __str__(self) -> str:  # KeyError quotes its message; show it as written.
        return str(self.args[0]) if self.args else ""


class RegistryError(CnnlabError, ValueError):
    """A registration that would break the registry (a duplicate name, a builder without a model type)."""


class ModelArgumentError(CnnlabError, TypeError, ValueError):
    """A keyword argument that a model does not accept, or a value out of its range."""


class InputShapeError(CnnlabError, ValueError):
    """An input tensor whose dtype, rank, channels or size the model cannot take."""


class WeightsError(CnnlabError, ValueError):
    """A state_dict or checkpoint that is unreadable or does not fit the model."""


class MissingDependencyError(CnnlabError, ImportError):
    """An optional package that a feature needs is not installed; the message names the pip package."""


class CnnlabWarning(UserWarning):
    """Base class of cnnlab's warnings (for example a dilated stack with holes in its receptive field)."""


def closest(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """The candidates nearest to ``name``: close spellings first, then names that contain it."""
    pool = sorted(set(candidates))
    near = difflib.get_close_matches(name, pool, n=n, cutoff=0.6)
    near += [c for c in pool if name and name.lower() in c.lower() and c not in near]
    return near[:n]


def suggest(name: str, candidates: Iterable[str], n: int = 5) -> str:
    """' Did you mean: a, b?' or '' when nothing is close."""
    near = closest(name, candidates, n=n)
    return f" Did you mean: {', '.join(near)}?" if near else ""


class ConfigError(CnnlabError, ValueError):
    """A training configuration that cannot be run: a misspelt key, a value out of range, a bad option."""


class DataError(CnnlabError, ValueError):
    """A dataset that is missing, unreadable or not in the expected format; an unreadable image."""


class TrainingError(CnnlabError, RuntimeError):
    """A run that cannot go on: a loss that turned NaN or infinite, a checkpoint that does not fit the run."""


class DivergedError(TrainingError):
    """A run whose loss, logits or gradients became NaN or infinite on finite data: it diverged (a result of
    its recipe, which an experiment records, not a fault)."""


class AnalysisError(CnnlabError, ValueError):
    """A model or argument that the analyzer cannot handle (an untraceable forward, a bad size string)."""


class NonFiniteError(CnnlabError, FloatingPointError):
    """A NaN or infinite value where a layer cannot take one (the sampling offsets of a deformable conv)."""


class GriddingWarning(CnnlabWarning):
    """A stack of dilated convolutions whose receptive field has holes: input pixels no path reaches."""


def check_count(name: str, value: Any, *, minimum: int, error: type[CnnlabError] = ModelArgumentError) -> int:
    """``value`` if it is an int >= ``minimum``, else ``error`` (a ModelArgumentError) that says so."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise error(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_positive(name: str, value: Any) -> float:
    """``value`` as a float if it is a number > 0 (a width multiplier), else a ModelArgumentError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ModelArgumentError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def check_drop_rate(name: str, value: Any) -> float:
    """``value`` as a float if it is a dropout probability in [0, 1), else a ModelArgumentError (1 drops all)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ModelArgumentError(f"{name} must be a probability in [0, 1), got {value!r}")
    return float(value)
