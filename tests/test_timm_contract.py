"""The model contract as timm's own model tests state it (``tests/test_models.py`` in timm), checked for every
registered model. Written from what the contract says, not from timm's code; each test names the timm test it
stands for.

Ported here: the minimum size of ``test_model_backward`` (which timm runs at ``min_input_size``): every model runs
at its declared minimum, in training and in eval mode, and not one pixel below, where
:class:`cnnlab.InputShapeError` says so first; and the head contract of ``test_model_default_cfgs`` (the widths of
``forward_features``, of the pre-logits and of the model without a classifier, by ``reset_classifier(0)`` and by
``num_classes=0``; the classifier's weights are in the state dict). Ported in ``tests/test_models_generic.py``,
next to the checks that already build what they need, with real weights: the backward pass with a finite
gradient for every parameter (``test_forward_backward``, at 32 px and up: see there why not at the minimum),
the columns of ``feature_info`` of ``test_model_forward_features`` (``channels()``, ``reduction()``,
``module_name()``; ``test_create_model_features_only``) and the feature maps against them
(``test_features_only_maps_match_feature_info``).

Left out, with the reason: the forward pass at the default size (224 to 520 px for 84 models takes minutes on a
CPU; the outputs at 224 are compared with torchvision's and timm's in the weight tests), ``reset_classifier(0,
"")`` and ``global_pool`` (cnnlab's heads always pool), the default config's names (cnnlab has no
``default_cfg``), TorchScript (not part of cnnlab's contract) and ``forward_intermediates`` (cnnlab has
``features_only``, whose tracing with ``torch.fx`` every model passes in ``test_create_model_features_only``).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import cnnlab

MODELS = cnnlab.list_models()


def quick_model(name: str, **kwargs: Any) -> cnnlab.CnnlabModel:
    """``name`` with weights that take no time to make: built on the meta device, given CPU memory, every
    weight 0.01 and every norm the identity. Its outputs mean nothing, its shapes and errors are the model's
    (initialising the nets of 100M weights takes seconds each). A model that computes buffers when it is built
    (LeNet-5's connection table) is built as it is, since those values would be lost."""
    with torch.device("meta"):
        model = cnnlab.create_model(name, **kwargs)
    if {n for n, _ in model.named_buffers()} - set(model.state_dict()):
        return cnnlab.create_model(name, **kwargs)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.01)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
    return model


def per_image(model: cnnlab.CnnlabModel, n: int, width: int, s: int) -> tuple[int, ...]:
    """The shape of ``width`` values for each of ``n`` images of ``s`` x ``s``, or for each pixel for a
    dense-output model."""
    return (n, width, s, s) if model.dense_output else (n, width)


def run_both_modes(model: cnnlab.CnnlabModel, s: int) -> tuple[Any, Any]:
    """The network's outputs (its input check bypassed) for ``s`` x ``s`` inputs in training mode (two images,
    as batch norm needs) and in eval mode (one)."""
    x = torch.randn(2, model.in_chans, s, s)
    with torch.no_grad():
        return model.train().forward(x), model.eval().forward(x[:1])


def expected_head_hidden_size(name: str, model: cnnlab.CnnlabModel) -> int:
    """The pre-logits' width of a classifier: fc7's 4096 for AlexNet and VGG (timm's VGG: ``head_hidden_size``
    4096 with or without a classifier), ``num_features`` for the others. (A dense head's hidden width is its own:
    ``tests/test_segmentation_models.py``.)"""
    return 4096 if name.startswith(("alexnet", "vgg")) else model.num_features


@pytest.mark.parametrize("name", MODELS)
def test_declared_minimum_is_the_smallest_input(name: str) -> None:
    """timm's ``test_model_backward`` runs at ``min_input_size``: every model takes its declared minimum in both
    modes, while one pixel less is refused by the input check with the minimum in the message, and is indeed too
    small for the network. Built with ``num_classes=0`` (as timm's ``test_model_default_cfgs_non_std`` builds it),
    a model returns its pre-logits, ``head_hidden_size`` wide."""
    model = quick_model(name, num_classes=0)
    s, c, width = model.min_input_size, model.in_chans, model.head_hidden_size
    assert model.num_classes == 0
    assert model.dense_output or width == expected_head_hidden_size(name, model)
    train_out, eval_out = run_both_modes(model, s)
    logits = train_out.logits if isinstance(train_out, cnnlab.LogitsWithAux) else train_out
    assert logits.shape == per_image(model, 2, width, s)
    assert isinstance(eval_out, Tensor) and eval_out.shape == per_image(model, 1, width, s)
    if s == 1:
        return
    with pytest.raises(cnnlab.InputShapeError, match=rf"H, W >= {s}\b.*too small for {name}"):
        model(torch.randn(1, c, s - 1, s - 1))
    with pytest.raises(RuntimeError):  # PyTorch's "output size is too small" and the like: the minimum is tight
        run_both_modes(model, s - 1)


@pytest.mark.parametrize("name", MODELS)
def test_head_widths(name: str) -> None:
    """timm's ``test_model_default_cfgs``: ``forward_features`` gives ``num_features`` channels (the last stage's)
    at 1/reduction of the input, ``forward_head(pre_logits=True)`` gives ``head_hidden_size`` features, and so does
    ``forward`` after ``reset_classifier(0)`` (the same width as when built with ``num_classes=0``, above); the
    classifier's weights are in the state dict."""
    model = quick_model(name).eval()
    assert model.num_classes > 0 and model.num_features > 0 and model.head_hidden_size > 0
    assert model.num_features == model.feature_info[-1].num_chs
    classifier = {m: n for n, m in model.named_modules()}[model.get_classifier()]
    weights = [f"{classifier}.{k}" for k in model.get_classifier().state_dict()]
    assert weights and set(weights) <= set(model.state_dict())
    s = model.min_input_size
    x = torch.randn(1, model.in_chans, s, s)
    with torch.no_grad():
        features = model.forward_features(x)
        pre_logits = model.forward_head(features, pre_logits=True)
        model.reset_classifier(0)
        without = model(x)
    width = model.head_hidden_size
    assert features.shape[:2] == (1, model.num_features)
    assert 1 <= features.shape[-1] <= math.ceil(s / model.feature_info[-1].reduction)
    assert pre_logits.shape[:2] == (1, width) and pre_logits.ndim == without.ndim
    assert model.num_classes == 0 and width == pre_logits.shape[1]
    assert model.dense_output or width == expected_head_hidden_size(name, model)
    assert without.shape == per_image(model, 1, width, s)
