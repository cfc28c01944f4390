"""The registry: strict names, strict keyword arguments, helpful messages."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.models.resnet import CifarResNet


def test_list_models_pattern_and_sorting() -> None:
    names = cnnlab.list_models("resnet*")
    assert names == sorted(names)
    assert {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"} <= set(names)
    assert all(n.startswith("resnet") for n in names)
    assert cnnlab.list_models("no-such-*") == []


def test_unknown_model_names_the_closest() -> None:
    with pytest.raises(cnnlab.UnknownModelError) as e:
        cnnlab.create_model("resnet5")
    assert isinstance(e.value, KeyError)
    assert "resnet50" in str(e.value) and "Did you mean" in str(e.value)


def test_unknown_keyword_names_the_accepted_ones() -> None:
    with pytest.raises(cnnlab.ModelArgumentError) as e:
        cnnlab.create_model("resnet18", shortcutt="A")
    msg = str(e.value)
    assert "'shortcutt'" in msg and "Did you mean: shortcut" in msg and "num_classes" in msg
    assert isinstance(e.value, TypeError | ValueError)


def test_builders_check_keywords_too() -> None:
    from cnnlab.models.resnet import resnet18

    with pytest.raises(cnnlab.ModelArgumentError, match="does not accept 'depth'"):
        resnet18(depth=18)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_chans": 0}, "in_chans must be an integer >= 1"),
        ({"num_classes": -1}, "num_classes must be an integer >= 0"),
        ({"num_classes": 2.5}, "num_classes must be an integer"),
    ],
)
def test_out_of_range_counts(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(cnnlab.ModelArgumentError, match=match):
        cnnlab.create_model("cifar_resnet20", **kwargs)


def test_variant_defaults_and_overrides() -> None:
    with torch.device("meta"):  # structure only
        assert cnnlab.create_model("cifar_resnet20").num_classes == 10
        assert cnnlab.create_model("resnet18").num_classes == 1000
        model = cnnlab.create_model("cifar_resnet20", shortcut="B", num_classes=100)
    assert model.num_classes == 100
    # REFERENCE.md: option-B ResNet-20 has 272,474 params with 10 classes; the fc on 64 features grows by 90 rows
    assert sum(p.numel() for p in model.parameters()) == 272_474 + 90 * (64 + 1)


def test_builder_keywords_are_accepted() -> None:
    model = cnnlab.create_model("cifar_residual_net", net_width=8, num_units=2)
    assert model.feature_info[-1].num_chs == 32
    with pytest.raises(cnnlab.ModelArgumentError, match="net_width must be an integer >= 1"):
        cnnlab.create_model("cifar_residual_net", net_width=0)


def test_duplicate_registration_is_an_error() -> None:
    def resnet18(**kwargs: Any) -> CifarResNet:
        return CifarResNet(**kwargs)

    with pytest.raises(cnnlab.RegistryError, match="registered twice"):
        cnnlab.register_model(resnet18)


def test_builder_must_name_its_model_class() -> None:
    def untyped_builder_for_test(**kwargs):
        return nn.Identity()

    with pytest.raises(cnnlab.RegistryError, match="annotate its return type"):
        cnnlab.register_model(untyped_builder_for_test)
    assert "untyped_builder_for_test" not in cnnlab.list_models()


def test_on_meta_builds_shapes_only_and_initialises_nothing_on_other_threads() -> None:
    """Building on the meta device skips the initialisers on the building thread only: another thread's
    initialisers still set values while the block runs, and a real tensor made inside is initialised too."""
    import threading

    from cnnlab.registry import meta_model, on_meta

    model = meta_model("cifar_resnet20")
    assert all(p.is_meta for p in model.parameters()) and sum(p.numel() for p in model.parameters()) == 269_722
    inside, leave = threading.Event(), threading.Event()
    seen: list[bool] = []

    def build() -> None:
        with on_meta():
            seen.append(nn.Conv2d(3, 8, 3).weight.is_meta)
            inside.set()
            leave.wait(30)

    builder = threading.Thread(target=build)
    builder.start()
    try:
        assert inside.wait(30) and seen == [True]
        torch.manual_seed(0)
        w = nn.init.kaiming_uniform_(torch.zeros(64, 64), a=5**0.5)  # this thread: a real initialisation
        bound = 1 / 64**0.5  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        assert torch.count_nonzero(w) == w.numel() and w.abs().max() <= bound and w.std() > bound / 2
        assert not nn.Linear(4, 4).weight.is_meta
    finally:
        leave.set()
        builder.join()
    with on_meta():
        real = nn.init.ones_(torch.zeros(3, device="cpu"))
        meta = nn.init.ones_(torch.zeros(3))
    assert torch.equal(real, torch.ones(3)) and meta.is_meta
