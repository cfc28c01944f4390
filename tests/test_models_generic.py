"""The model contract, checked the same way for every registered model on small CPU inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.analysis.analyze import meta_view
from cnnlab.models.base import feature_shapes
from tests.helpers import LARGEST, calibrate_norms, params_of

MODELS = cnnlab.list_models()


def small_size(model: cnnlab.CnnlabModel) -> int:
    """A small input that every stage can take: the model's minimum, at least 32, rounded up to 32."""
    return max(32, -(-model.min_input_size // 32) * 32)


# The README's table of models, written out: family -> registered names.
FAMILIES = {
    "resnet": [f"resnet{d}" for d in (18, 34, 50, 101, 152)] + ["plain18", "plain34"]
    + [f"se_resnet{d}" for d in (50, 101, 152)] + ["resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2"]
    + [f"cifar_resnet{d}" for d in (20, 32, 44, 56, 110, 1202)] + [f"cifar_plain{d}" for d in (20, 32, 44, 56, 110)]
    + ["cifar_preact_resnet110", "cifar_preact_resnet164", "cifar_residual_net", "dilated_resnet50", "deform_resnet50"],
    "googlenet": ["googlenet", "googlenet_paper"],
    "inception": ["inception_v3", "inception_v4", "inception_resnet_v1", "inception_resnet_v2"],
    "classic": ["lenet5", "alexnet"] + [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")],
    "densenet": ["densenet121", "densenet161", "densenet169", "densenet201", "densenet_bc_100_12"],
    "mobilenet": ["mobilenet_v1", "mobilenet_v2"],
    "shufflenet": [f"shufflenet_v1_g{g}_x{w}" for g in (1, 2, 3, 4, 8) for w in ("0_5", "1_0", "2_0")]
    + [f"shufflenet_v2_x{w}" for w in ("0_5", "1_0", "1_5", "2_0")],
}  # fmt: skip


def test_registry_holds_models() -> None:
    registered = {f: sorted(n for n in MODELS if cnnlab.model_entry(n).family == f) for f in FAMILIES}
    assert registered == {f: sorted(names) for f, names in FAMILIES.items()}
    assert len(MODELS) == sum(map(len, FAMILIES.values())) == 71
    assert all(isinstance(cnnlab.model_entry(n).doc, str) and cnnlab.model_entry(n).doc for n in MODELS)


def test_the_slow_models_are_the_largest() -> None:
    with torch.device("meta"):
        models = {n: cnnlab.create_model(n) for n in MODELS}
    weights = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
    layers = {n: sum(isinstance(m, nn.Conv2d | nn.Linear) for m in model.modules()) for n, model in models.items()}
    assert {n for n in MODELS if weights[n] >= 60_000_000 or layers[n] >= 1000} == LARGEST


@pytest.mark.parametrize("name", params_of(MODELS))
def test_forward_backward(name: str) -> None:
    """Logits of the right shape, finite, and a gradient reaches every parameter."""
    model = cnnlab.create_model(name, in_chans=1, num_classes=7)
    assert isinstance(model, cnnlab.CnnlabModel)
    assert model.model_name == name and model.in_chans == 1 and model.num_classes == 7
    s = small_size(model)
    model.train()
    out = model(torch.randn(2, 1, s, s))
    logits = out.logits if isinstance(out, cnnlab.LogitsWithAux) else out
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    loss = logits.square().mean() + sum(a.square().mean() for a in getattr(out, "aux", ()))
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"parameters without a finite gradient: {no_grad[:5]}"

    model.eval()
    with torch.no_grad():
        eval_out = model(torch.randn(3, 1, s, s))
    assert isinstance(eval_out, torch.Tensor) and eval_out.shape == (3, 7)


@pytest.mark.parametrize("name", params_of(MODELS))
def test_features_head_and_reset(name: str) -> None:
    """num_classes=0 gives pooled features; forward == forward_head(forward_features); reset_classifier."""
    model = cnnlab.create_model(name, num_classes=0)
    s = small_size(model)
    x = torch.randn(2, model.in_chans, s, s)
    calibrate_norms(model, x)
    with torch.no_grad():
        pooled = model(x)
        assert pooled.shape == (2, model.num_features)
        assert torch.isfinite(pooled).all()
        feats = model.forward_features(x)
        assert feats.shape[:2] == (2, model.num_features)
        torch.testing.assert_close(model.forward_head(feats, pre_logits=True), pooled)

        model.reset_classifier(5)
        assert model.num_classes == 5
        logits = model(x)
        assert logits.shape == (2, 5)
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), logits)
        model.reset_classifier(0)
        torch.testing.assert_close(model(x), pooled)


@pytest.mark.parametrize("name", MODELS)
def test_feature_info_matches_real_features(name: str) -> None:
    """Channels and reductions of feature_info agree with the feature maps of a forward pass (on the meta
    device, norms passing their input through as the analyzer does: the shapes without the arithmetic).

    The reduction is measured as a difference: growing the input by 64 pixels grows each feature map by
    exactly 64 / reduction (true through any conv or pool whose stride divides the growth).
    """
    with torch.device("meta"):
        model = cnnlab.create_model(name)
        s = small_size(model)
        c = model.in_chans  # 3 for most models, 1 for LeNet-5
        with meta_view(model) as meta:
            small = feature_shapes(meta, torch.empty(1, c, s, s))
            large = feature_shapes(meta, torch.empty(1, c, s + 64, s + 64))
    assert [f.module for f in model.feature_info] == list(small)
    for f in model.feature_info:
        assert small[f.module][1] == f.num_chs, f
        assert (large[f.module][-1] - small[f.module][-1]) * f.reduction == 64, f
    assert model.feature_info[-1].num_chs == model.num_features


@pytest.mark.parametrize("name", MODELS)
def test_stages_and_heads_hold_every_parameter(name: str) -> None:
    """The trainer freezes by stage name: every parameter must belong to exactly one stage or head."""
    with torch.device("meta"):
        model = cnnlab.create_model(name)
    groups = model.stage_names() + list(model.head_modules)
    for pname, _ in model.named_parameters():
        owners = [g for g in groups if pname.startswith(g + ".")]
        assert len(owners) == 1, f"{pname} belongs to {owners}"


@pytest.mark.parametrize("name", MODELS)
def test_bad_input_is_reported(name: str) -> None:
    """The input check runs before any layer: on the meta device, with no weights."""
    with torch.device("meta"):
        model = cnnlab.create_model(name).eval()
        s, c = small_size(model), model.in_chans
        wrong = 1 if c != 1 else 3
        with pytest.raises(cnnlab.InputShapeError, match=rf"expects .*\(N, {c}, H, W\).*got {wrong} channels"):
            model(torch.empty(1, wrong, s, s))
        with pytest.raises(cnnlab.InputShapeError, match="batch dimension"):
            model(torch.empty(c, s, s))
        if model.min_input_size > 1:
            small = model.min_input_size - 1
            with pytest.raises(cnnlab.InputShapeError, match=f"H, W >= {model.min_input_size}"):
                model(torch.empty(1, c, small, small))
