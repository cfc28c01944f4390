"""Layers by name, for the places where a person writes a model argument as text: a YAML config or
``--model-kwargs`` on the command line. Python code passes the classes themselves (``attn_layer=SqueezeExcite``).

``"se"`` names :class:`SqueezeExcite`; ``{"name": "se", "reduction": 4}`` names ``partial(SqueezeExcite, reduction=4)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from torch import nn

from cnnlab.errors import ConfigError, suggest
from cnnlab.layers.squeeze_excite import SqueezeExcite

NAMED_LAYERS: dict[str, Callable[..., nn.Module]] = {
    "se": SqueezeExcite,  # Hu et al. 2018; reduction r as an extra key
    "relu": nn.ReLU,
    "batchnorm": nn.BatchNorm2d,
}
"""The layers an experiment file may name (for model arguments ending in ``_layer``)."""


def resolve_layer(key: str, value: Any) -> Any:
    """``"se"`` -> SqueezeExcite; ``{"name": "se", "reduction": 4}`` -> partial(SqueezeExcite, reduction=4)."""
    if value is None:
        return None
    name, options = (value, {}) if isinstance(value, str) else (dict(value).pop("name", None), dict(value))
    options.pop("name", None)
    if name not in NAMED_LAYERS:
        raise ConfigError(
            f"{key}: unknown layer {name!r}.{suggest(str(name), NAMED_LAYERS)} Known: {', '.join(NAMED_LAYERS)}"
        )
    return partial(NAMED_LAYERS[name], **options) if options else NAMED_LAYERS[name]


def resolve_model_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Model arguments as written in a file, with named layers turned into layer classes."""
    return {k: resolve_layer(k, v) if k.endswith("_layer") else v for k, v in kwargs.items()}
