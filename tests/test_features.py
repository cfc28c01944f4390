"""The features model (``features_only=True``): what it runs, what it holds, and timm as an oracle where
the stage layouts are the same. The generic checks over every model are in test_models_generic.py."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.fx

import cnnlab
from cnnlab.models.features import FeatureListNet, feature_shapes
from tests.helpers import randomize_norm_stats


def test_stages_after_the_last_selected_one_do_not_run() -> None:
    model = cnnlab.create_model("googlenet").eval()
    ran: list[str] = []
    for name in [*model.stage_names(), "aux1", "aux2", "head"]:
        model.get_submodule(name).register_forward_pre_hook(lambda _m, _a, name=name: ran.append(name))
    features = FeatureListNet(model, out_indices=(1, 3))
    with torch.no_grad():
        maps = features(torch.randn(1, 3, 64, 64))
    assert ran == ["stem", "inception3", "inception4a", "inception4d"]
    assert [m.shape[1] for m in maps] == [480, 528] == features.feature_info.channels()
    assert list(dict(features.named_children())) == ["transform", "stem", "inception3", "inception4a", "inception4d"]


def test_train_mode_gradients_and_no_aux_heads() -> None:
    """In training mode the features model returns maps (no LogitsWithAux) and every parameter it holds
    gets a gradient; the auxiliary classifiers are not part of it."""
    features = cnnlab.create_model("googlenet", features_only=True).train()  # aux_logits=True by default
    assert not any(k.startswith(("aux1.", "aux2.", "head.")) for k in features.state_dict())
    maps = features(torch.randn(2, 3, 64, 64))
    assert isinstance(maps, list) and [m.shape[1] for m in maps] == [192, 480, 512, 528, 832, 1024]
    sum(m.mean() for m in maps).backward()
    assert all(p.grad is not None for p in features.parameters())


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "densenet_bc_100_12", "shufflenet_v2_x0_5"])
def test_torch_fx_traces_the_features_model_and_copies_keep_it(name: str) -> None:
    model = cnnlab.create_model(name).eval()
    features = FeatureListNet(model, out_indices=(0, -1))
    x = torch.randn(2, model.in_chans, 64, 64)
    with torch.no_grad():
        expected = features(x)
        torch.testing.assert_close(torch.fx.symbolic_trace(features)(x), expected)
        twin = copy.deepcopy(features)
        assert twin.feature_info == features.feature_info and twin.feature_info.channels()
        torch.testing.assert_close(twin(x), expected)
        with pytest.raises(cnnlab.InputShapeError, match="batch dimension"):
            twin(x[0])


def test_weights_loaded_into_the_model_are_the_features_models() -> None:
    """The features model shares the model's modules under the model's names: load the weights into the
    model, then wrap it; or load the model's state_dict into a features model (less the head)."""
    peer = randomize_norm_stats(cnnlab.Peer("torchvision", "resnet18").build()).eval()
    model = cnnlab.create_model("resnet18").eval()
    cnnlab.load_pretrained(model, peer)
    features = FeatureListNet(model)
    fresh = cnnlab.create_model("resnet18", features_only=True).eval()
    missing, unexpected = fresh.load_state_dict(model.state_dict(), strict=False)
    assert not missing and unexpected == ["head.fc.weight", "head.fc.bias"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), features(x))
        body = torch.nn.Sequential(*list(peer.children())[:-2])  # torchvision's resnet18 without avgpool, fc
        torch.testing.assert_close(features(x)[-1], body(x))
    assert {k: tuple(s) for k, s in feature_shapes(model, x).items()} == {
        "stem": (1, 64, 32, 32),
        "layer1": (1, 64, 16, 16),
        "layer2": (1, 128, 8, 8),
        "layer3": (1, 256, 4, 4),
        "layer4": (1, 512, 2, 2),
    }


@pytest.mark.parametrize(("name", "timm_name"), [("resnet50", "resnet50"), ("densenet121", "densenet121")])
def test_feature_maps_match_timm_where_the_stages_are_the_same(name: str, timm_name: str) -> None:
    """timm's features_only models of these architectures cut at the same five stages."""
    import timm

    peer = timm.create_model(timm_name, features_only=True, pretrained=False).eval()
    ours = cnnlab.create_model(name, features_only=True, out_indices=(0, 2, -1)).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        theirs = [m.shape for m in peer(x)]
        assert [m.shape for m in ours(x)] == [theirs[0], theirs[2], theirs[-1]]
    picked = [peer.feature_info.channels()[i] for i in (0, 2, -1)]
    assert ours.feature_info.channels() == picked
    assert ours.feature_info.reduction() == [peer.feature_info.reduction()[i] for i in (0, 2, -1)]
