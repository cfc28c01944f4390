"""The model contract, checked the same way for every registered model: structure on the meta device, real
forward passes on small CPU inputs. A dense-output model (the segmentation family) returns a map of logits at
the input's size where a classifier returns one row per image, and its ``forward_head`` returns that map at the
feature resolution, which ``forward`` upsamples (:func:`output_shape`, :func:`as_forward_returns`)."""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil
import typing
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

import cnnlab
from cnnlab.layers import upsample
from cnnlab.models import shufflenet
from cnnlab.models.features import FeatureListNet
from tests.helpers import LARGEST, calibrate_norms, params_of

MODELS = cnnlab.list_models()

REAL = params_of(MODELS)
"""Every model, the largest marked slow: for the tests that build models with real weights."""


def small_size(model: cnnlab.CnnlabModel) -> int:
    """A small input that every stage can take: the model's minimum, at least 32, rounded up to 32."""
    return max(32, -(-model.min_input_size // 32) * 32)


def output_shape(model: cnnlab.CnnlabModel, n: int, width: int, s: int) -> tuple[int, ...]:
    """What ``forward`` returns for ``n`` images of ``s`` x ``s``: ``width`` values per image, per pixel for a
    dense-output model."""
    return (n, width, s, s) if model.dense_output else (n, width)


def as_forward_returns(model: cnnlab.CnnlabModel, head_out: Tensor, s: int) -> Tensor:
    """``forward_head``'s output as ``forward`` returns it: a dense-output model upsamples it to the input."""
    return upsample(head_out, (s, s)) if model.dense_output else head_out


def meta_model(name: str, **kwargs: typing.Any) -> cnnlab.CnnlabModel:
    """The model without weights, for the tests that check structure only."""
    with torch.device("meta"):
        return cnnlab.create_model(name, **kwargs)


def registered_builders(module: object) -> dict[str, Callable[..., nn.Module]]:
    """The functions of ``module`` that ``@register_model`` wrapped: found without the registry, as the
    wrapped functions whose return annotation is a cnnlab model class."""
    found = {}
    for name, fn in vars(module).items():
        if inspect.isfunction(fn) and fn.__module__ == module.__name__ and hasattr(fn, "__wrapped__"):
            returns = typing.get_type_hints(fn).get("return")
            if inspect.isclass(returns) and issubclass(returns, cnnlab.CnnlabModel):
                found[name] = fn
    return found


def test_registry_holds_exactly_the_builders_of_the_model_modules() -> None:
    """Every builder that a ``cnnlab.models`` module defines is registered under its name, and nothing else is:
    the registered count is the count found by scanning the modules (ShuffleNet v1's variants are generated
    from its groups and widths, not written out)."""
    scanned: dict[str, Callable[..., nn.Module]] = {}
    for info in pkgutil.iter_modules(cnnlab.models.__path__):
        scanned |= registered_builders(importlib.import_module(f"cnnlab.models.{info.name}"))
    assert scanned, "no builders found: the scan is broken"
    for name, fn in scanned.items():
        assert cnnlab.model_entry(name).builder is fn.__wrapped__, name
    generated = {shufflenet.v1_variant_name(g, w) for g in shufflenet.V1_WIDTHS for w in shufflenet.V1_VARIANT_WIDTHS}
    assert not generated & set(scanned)
    assert sorted(set(scanned) | generated) == MODELS
    assert len(MODELS) == len(cnnlab.model_entries()) == len(scanned) + len(generated)
    families = {m.__name__.rsplit(".", 1)[-1] for m in cnnlab.models.FAMILIES}
    assert {cnnlab.model_entry(n).family for n in MODELS} == families
    assert all(cnnlab.model_entry(n).doc for n in MODELS)


# The README's table of models, written out: family -> registered names.
FAMILIES = {
    "resnet": [f"resnet{d}" for d in (18, 34, 50, 101, 152)] + ["plain18", "plain34"]
    + [f"se_resnet{d}" for d in (50, 101, 152)] + ["resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2"]
    + [f"cifar_resnet{d}" for d in (20, 32, 44, 56, 110, 1202)] + [f"cifar_plain{d}" for d in (20, 32, 44, 56, 110)]
    + ["cifar_preact_resnet110", "cifar_preact_resnet164", "cifar_residual_net", "dilated_resnet50", "deform_resnet50"],
    "googlenet": ["googlenet", "googlenet_paper", "googlenet_small", "bn_inception"],
    "inception": ["inception_v3", "inception_v4", "inception_resnet_v1", "inception_resnet_v2",
                  "inception_resnet_small"],
    "xception": ["xception"],
    "classic": ["lenet5", "alexnet", "alexnet_paper", "cifar_vgg"]
    + [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")],
    "densenet": ["densenet121", "densenet161", "densenet169", "densenet201", "densenet_bc", "densenet_bc_100_12"],
    "mobilenet": ["mobilenet_v1", "mobilenet_v2"],
    "shufflenet": [f"shufflenet_v1_g{g}_x{w}" for g in (1, 2, 3, 4, 8) for w in ("0_5", "1_0", "2_0")]
    + [f"shufflenet_v2_x{w}" for w in ("0_5", "1_0", "1_5", "2_0")],
    "segmentation": ["fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
                     "fcn_cifar_resnet20", "deeplabv3_cifar_resnet20", "duc_cifar_resnet20"],
}  # fmt: skip


def test_registry_holds_the_readmes_table_of_models() -> None:
    registered = {f: sorted(n for n in MODELS if cnnlab.model_entry(n).family == f) for f in FAMILIES}
    assert registered == {f: sorted(names) for f, names in FAMILIES.items()}
    assert len(MODELS) == sum(map(len, FAMILIES.values())) == 85
    assert all(isinstance(cnnlab.model_entry(n).doc, str) and cnnlab.model_entry(n).doc for n in MODELS)


def test_the_slow_models_are_the_largest() -> None:
    with torch.device("meta"):
        models = {n: cnnlab.create_model(n) for n in MODELS}
    weights = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
    layers = {n: sum(isinstance(m, nn.Conv2d | nn.Linear) for m in model.modules()) for n, model in models.items()}
    assert {n for n in MODELS if weights[n] >= 60_000_000 or layers[n] >= 1000} == LARGEST


@pytest.mark.parametrize("name", REAL)
def test_forward_backward(name: str) -> None:
    """Logits of the right shape, finite, and a gradient reaches every parameter (timm's ``test_model_backward``,
    at 32 px and up: at the minimum of 1 px, batch norm over the two values of a 1x1 map makes the gradients of
    the 100-layer ResNets overflow)."""
    model = cnnlab.create_model(name, in_chans=1, num_classes=7)
    assert isinstance(model, cnnlab.CnnlabModel)
    assert model.model_name == name and model.in_chans == 1 and model.num_classes == 7
    s = small_size(model)
    model.train()
    out = model(torch.randn(2, 1, s, s))
    logits = out.logits if isinstance(out, cnnlab.LogitsWithAux) else out
    assert logits.shape == output_shape(model, 2, 7, s)
    assert torch.isfinite(logits).all()
    assert all(a.shape == logits.shape for a in getattr(out, "aux", ()))
    loss = logits.square().mean() + sum(a.square().mean() for a in getattr(out, "aux", ()))
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"parameters without a finite gradient: {no_grad[:5]}"

    model.eval()
    with torch.no_grad():
        eval_out = model(torch.randn(3, 1, s, s))
    assert isinstance(eval_out, torch.Tensor) and eval_out.shape == output_shape(model, 3, 7, s)


@pytest.mark.parametrize("name", REAL)
def test_features_head_and_reset(name: str) -> None:
    """num_classes=0 gives the pre-logits (a dense-output model: per pixel), head_hidden_size wide: forward ==
    forward_head(forward_features, pre_logits=True) (upsampled to the input for a dense-output model);
    reset_classifier(n) adds a classifier, and reset_classifier(0) takes it away again, the rest unchanged."""
    model = cnnlab.create_model(name, num_classes=0)
    s = small_size(model)
    x = torch.randn(2, model.in_chans, s, s)
    # statistics of 16 images: from 2, a 1x1 last stage (DenseNet at 32 px) normalises 2 values per channel, and
    # eval outputs blow up to 1e38 along DenseNet-169's many layers
    calibrate_norms(model, torch.randn(16, model.in_chans, s, s))
    with torch.no_grad():
        pooled = model(x)
        assert pooled.shape == output_shape(model, 2, model.head_hidden_size, s)
        assert torch.isfinite(pooled).all()
        feats = model.forward_features(x)
        assert feats.shape[:2] == (2, model.num_features)
        torch.testing.assert_close(as_forward_returns(model, model.forward_head(feats, pre_logits=True), s), pooled)

        model.reset_classifier(5)
        assert model.num_classes == 5
        logits = model(x)
        assert logits.shape == output_shape(model, 2, 5, s)
        torch.testing.assert_close(as_forward_returns(model, model.forward_head(model.forward_features(x)), s), logits)
        model.reset_classifier(0)
        torch.testing.assert_close(model(x), pooled)


def stage_outputs(model: cnnlab.CnnlabModel, x: Tensor) -> list[Tensor]:
    """The output of each ``feature_info`` module in a forward pass of the whole model (forward hooks): the
    reference for the features model."""
    outputs: dict[str, Tensor] = {}
    handles = [
        model.get_submodule(f.module).register_forward_hook(
            lambda _m, _i, out, name=f.module: outputs.__setitem__(name, out.clone())
        )
        for f in model.feature_info
    ]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return [outputs[f.module] for f in model.feature_info]


@pytest.mark.parametrize("name", REAL)
def test_features_only_maps_match_feature_info(name: str) -> None:
    """The features model returns one map per stage, equal to the stage's output in the whole model, with the
    channels of feature_info and its reduction: growing the input by 64 pixels grows each map by exactly
    64 / reduction (true through any conv or pool whose stride divides the growth, whatever the padding), and
    no map is larger than ceil(input / reduction). ``out_indices=(0, -1)`` gives the first and last map."""
    model = cnnlab.create_model(name, num_classes=0)
    s, c = small_size(model), model.in_chans
    x = torch.randn(2, c, s, s)
    calibrate_norms(model, x)  # eval-mode activations of a realistic scale (ResNet-1202's overflow otherwise)
    features = FeatureListNet(model)
    assert features.feature_info == model.feature_info
    with torch.no_grad():
        maps = features(x)
        reference = stage_outputs(model, x)
        larger = features(torch.randn(1, c, s + 64, s + 64))
        ends = FeatureListNet(model, out_indices=(0, -1))(x)
    assert isinstance(maps, list) and len(maps) == len(model.feature_info) == len(larger)
    for f, fmap, ref, big in zip(model.feature_info, maps, reference, larger, strict=True):
        assert fmap.shape[1] == f.num_chs, f
        torch.testing.assert_close(fmap, ref, rtol=0, atol=0)
        assert (big.shape[-1] - fmap.shape[-1]) * f.reduction == 64, f
        assert fmap.shape[-1] <= math.ceil(s / f.reduction), f
    assert model.feature_info[-1].num_chs == model.num_features
    assert len(ends) == 2
    torch.testing.assert_close(ends, [maps[0], maps[-1]], rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_create_model_features_only(name: str) -> None:
    """create_model(features_only=True) keeps the stages and no head (auxiliary heads included), under the
    model's own parameter names; ``out_indices`` selects stages and prunes what comes after the last one. Its
    ``feature_info`` has timm's columns (``test_model_forward_features`` in timm): ``channels()``, ``reduction()``
    and ``module_name()``, of every level, of one for an index, of several for a list; at least three levels,
    and the reductions never shrink."""
    model = meta_model(name)
    info = model.feature_info
    heads = tuple(f"{h}." for h in model.head_modules)
    features = meta_model(name, features_only=True)
    ends, first = FeatureListNet(model, out_indices=(0, -1)), FeatureListNet(model, out_indices=[-len(info)])
    assert isinstance(features, FeatureListNet)
    assert features.feature_info == info and len(info) >= 3
    columns = features.feature_info
    assert columns.channels() == [f.num_chs for f in info] and columns.channels(-1) == model.num_features
    assert columns.reduction() == [f.reduction for f in info] == sorted(columns.reduction())
    assert columns.module_name() == model.stage_names() and columns.module_name(0) == info[0].module
    assert columns.reduction([0, -1]) == [info[0].reduction, info[-1].reduction]
    assert ends.feature_info == [info[0], info[-1]]
    assert ends.feature_info.channels() == [info[0].num_chs, info[-1].num_chs]
    assert ends.feature_info.reduction() == [info[0].reduction, info[-1].reduction]
    assert first.feature_info == info[:1]
    for f in (features, ends, first):
        keys = set(f.state_dict())
        assert keys <= set(model.state_dict()) and not any(k.startswith(heads) for k in keys)
    stages = tuple(f"{s}." for s in model.stage_names())
    assert {k for k in features.state_dict() if k.startswith(stages)} == {
        k for k in model.state_dict() if k.startswith(stages)
    }
    later = tuple(f"{s}." for s in model.stage_names()[1:])
    assert not any(k.startswith(later) for k in first.state_dict()), "stages after the last selected one are kept"


@pytest.mark.parametrize("name", MODELS)
def test_stages_and_heads_hold_every_parameter(name: str) -> None:
    """The trainer freezes by stage name: every parameter must belong to exactly one stage or head."""
    model = meta_model(name)
    groups = model.stage_names() + list(model.head_modules)
    for pname, _ in model.named_parameters():
        owners = [g for g in groups if pname.startswith(g + ".")]
        assert len(owners) == 1, f"{pname} belongs to {owners}"


@pytest.mark.parametrize("name", MODELS)
def test_bad_input_is_reported(name: str) -> None:
    """Wrong input is refused before any layer runs (so the meta device, which runs none, suffices); the
    features model checks its input the same way."""
    model = meta_model(name).eval()
    features = FeatureListNet(model).eval()
    s, c = small_size(model), model.in_chans
    wrong = 1 if c != 1 else 3
    with torch.device("meta"):
        for net in (model, features):
            with pytest.raises(cnnlab.InputShapeError, match=rf"expects .*\(N, {c}, H, W\).*got {wrong} channels"):
                net(torch.randn(1, wrong, s, s))
            with pytest.raises(cnnlab.InputShapeError, match="batch dimension"):
                net(torch.randn(c, s, s))
            if model.min_input_size > 1:
                small = model.min_input_size - 1
                with pytest.raises(cnnlab.InputShapeError, match=f"H, W >= {model.min_input_size}"):
                    net(torch.randn(1, c, small, small))


@pytest.mark.parametrize("out_indices", [(5,), (-6,), (0, 5)])
def test_out_of_range_index_names_the_stages(out_indices: tuple[int, ...]) -> None:
    pattern = r"out of range; resnet18 has 5 stages, valid indices 0..4 or -5..-1: 0 stem, 1 layer1, .* 4 layer4"
    with pytest.raises(cnnlab.ModelArgumentError, match=pattern):
        meta_model("resnet18", features_only=True, out_indices=out_indices)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"features_only": True, "out_indices": (0, -5)}, "selects stage 0 twice"),
        ({"features_only": True, "out_indices": ()}, "non-empty sequence"),
        ({"features_only": True, "out_indices": 2}, "non-empty sequence"),
        ({"features_only": True, "out_indices": (1.0,)}, "1.0 is not a stage index"),
        ({"out_indices": (0,)}, "needs features_only=True"),
    ],
)
def test_bad_out_indices(kwargs: dict[str, typing.Any], match: str) -> None:
    with pytest.raises(cnnlab.ModelArgumentError, match=match):
        meta_model("resnet18", **kwargs)
