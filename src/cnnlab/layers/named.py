"""Layers by name, for model arguments written as plain data: a YAML config, ``--model-kwargs`` on the command
line, a checkpoint. Python code passes the classes themselves (``attn_layer=SqueezeExcite``).

``"se"`` names :class:`SqueezeExcite`; ``{"name": "se", "reduction": 4}`` names ``partial(SqueezeExcite, reduction=4)``;
``None`` leaves the layer out. Only arguments whose names end in ``_layer`` take a layer. The two directions:
:func:`resolve_model_kwargs` (names to classes; called by :func:`cnnlab.registry.build_model` alone) and
:func:`plain_model_kwargs` (classes back to names; what a config and a checkpoint store).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from torch import nn

from cnnlab.errors import ConfigError, suggest
from cnnlab.layers.aspp import DeepLabHead
from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.deformable import DeformConv2d
from cnnlab.layers.depthwise_separable import DepthwiseSeparableConv, SeparableConv2d
from cnnlab.layers.duc import DUCHead
from cnnlab.layers.fcn_head import FCNHead
from cnnlab.layers.gabor import GaborConv2d
from cnnlab.layers.inception_v1 import InceptionV1
from cnnlab.layers.squeeze_excite import SqueezeExcite

NAMED_LAYERS: dict[str, Callable[..., nn.Module]] = {
    # attention (attn_layer)
    "se": SqueezeExcite,  # Hu et al. 2018; reduction r as an extra key
    # activations (act_layer)
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,  # MobileNet v2
    "sigmoid": nn.Sigmoid,  # the saturating unit of Ioffe & Szegedy's BN-x5-Sigmoid experiment
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    # normalisation (norm_layer; null: none)
    "batchnorm": nn.BatchNorm2d,
    # convolutions (conv_layer, called like nn.Conv2d)
    "conv": nn.Conv2d,
    "deformable": DeformConv2d,  # Dai et al. 2017; offset_groups and modulated as extra keys
    "separable": SeparableConv2d,  # depthwise then pointwise (Howard et al. 2017; Chollet 2017)
    # stems (stem_layer of cifar_vgg, called as stem_layer(in_chs, out_chs))
    "gabor": GaborConv2d,  # Serre et al. 2007's fixed S1 Gabor bank; sizes, orientations as extra keys
    # blocks (block_layer, called like ConvBnAct(in_chs, out_chs, stride=...))
    "conv_bn_act": ConvBnAct,  # a full 3x3 conv-BN-ReLU (MobileNet's Table 4 "Conv MobileNet")
    "depthwise_separable": DepthwiseSeparableConv,  # depthwise 3x3-BN-ReLU, pointwise 1x1-BN-ReLU (Howard et al.)
    # Inception modules (inception_layer of googlenet_small)
    "inception": InceptionV1,  # Szegedy et al. 2015, Fig. 2b (dimension reductions); naive as an extra key
    "inception_naive": partial(InceptionV1, naive=True),  # Fig. 2a: no reductions, the pool passes through
    "inception_3x3": partial(InceptionV1, kernel_size=3),  # one filter size in every branch (parallel_kernels)
    # dense prediction heads (head_layer, aux_layer of the segmentation models; null: no auxiliary head)
    "fcn": FCNHead,  # Long et al. 2015, torchvision's FCNHead; hidden, drop_rate as extra keys
    "deeplab": DeepLabHead,  # Chen et al. 2017, ASPP; rates, chs, refine, image_pooling as extra keys
    "duc": DUCHead,  # Wang et al. 2018, dense upsampling convolution; scale as an extra key
}
"""The layers a config, a flag or a checkpoint may name (for model arguments ending in ``_layer``)."""

LAYER_SUFFIX = "_layer"
"""Model arguments whose names end so take a layer (``attn_layer``, ``norm_layer``, ``act_layer``); those ending
in ``_layers`` take a list of them (``stage_conv_layers: [conv, conv, deformable]``)."""


def resolve_layer(key: str, value: Any) -> Any:
    """``"se"`` -> SqueezeExcite; ``{"name": "se", "reduction": 4}`` -> partial(SqueezeExcite, reduction=4)."""
    if value is None:
        return None
    if isinstance(value, str):
        name, options = value, {}
    elif isinstance(value, Mapping):
        options = dict(value)
        name = options.pop("name", None)
    else:
        raise ConfigError(
            f"{key}: a layer is named as plain data, such as 'se' or {{'name': 'se', 'reduction': 4}}; got "
            f"{value!r} (pass layer classes to cnnlab.create_model)"
        )
    if name not in NAMED_LAYERS:
        raise ConfigError(
            f"{key}: unknown layer {name!r}.{suggest(str(name), NAMED_LAYERS)} Known: {', '.join(NAMED_LAYERS)}"
        )
    return partial(NAMED_LAYERS[name], **options) if options else NAMED_LAYERS[name]


def layer_as_data(key: str, value: Any) -> Any:
    """The inverse of :func:`resolve_layer`: SqueezeExcite -> ``"se"``; partial(SqueezeExcite, reduction=4) ->
    ``{"name": "se", "reduction": 4}``; names and ``None`` stay as they are. A layer without a name is a
    ConfigError: plain data cannot hold it."""
    if value is None or isinstance(value, str | Mapping):
        resolve_layer(key, value)  # a misspelt name fails here, not when the data is read back
        return _plain(key, value)
    fn, options = (value.func, dict(value.keywords)) if isinstance(value, partial) and not value.args else (value, {})
    names = [n for n, layer in NAMED_LAYERS.items() if layer is fn]
    if not names:
        raise ConfigError(
            f"{key}: {value!r} has no name, so a config or checkpoint cannot hold it; name one of "
            f"{', '.join(NAMED_LAYERS)} (cnnlab.layers.named.NAMED_LAYERS) or build the model with cnnlab.create_model"
        )
    return {"name": names[0], **options} if options else names[0]


def resolve_model_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Model arguments as plain data, with named layers turned into layer classes."""
    return {k: _each(resolve_layer, k, v) for k, v in kwargs.items()}


def plain_model_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Model arguments as plain data (YAML- and ``weights_only``-safe): layers by name, tuples as lists."""
    return {str(k): _each(layer_as_data, k, v) if k.endswith((LAYER_SUFFIX, f"{LAYER_SUFFIX}s")) else _plain(k, v)
            for k, v in kwargs.items()}  # fmt: skip


def _each(convert: Callable[[str, Any], Any], key: str, value: Any) -> Any:
    """``convert`` applied to a ``*_layer`` argument, or to each item of a ``*_layers`` one."""
    if key.endswith(LAYER_SUFFIX):
        return convert(key, value)
    if key.endswith(f"{LAYER_SUFFIX}s") and isinstance(value, list | tuple):
        return [convert(key, v) for v in value]
    return value


def _plain(key: str, obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(key, v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(key, v) for v in obj]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise ConfigError(
        f"{key}: {obj!r} is not plain data (numbers, strings, lists, mappings; layers by name), so a config or "
        "checkpoint cannot hold it; build the model with cnnlab.create_model"
    )
