"""cnnlab's own error and warning types.

Every mistake a user can make (an unknown model, a bad argument, an input of the wrong shape, a checkpoint
that does not fit) raises one of these with a message that says what was expected. Each subclasses the
built-in type that fits, so ``except ValueError`` or ``except KeyError`` keep working.

May import: nothing from cnnlab.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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
    """An input tensor whose rank, channels or size the model cannot take."""


class WeightsError(CnnlabError, ValueError):
    """A state_dict or checkpoint that is unreadable or does not fit the model."""


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


class AnalysisError(CnnlabError, ValueError):
    """A model or argument that the analyzer cannot handle (an untraceable forward, a bad size string)."""


class GriddingWarning(CnnlabWarning):
    """A stack of dilated convolutions whose receptive field has holes: input pixels no path reaches."""
