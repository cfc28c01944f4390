"""Bad input to the Python API's builders and weight loading: a cnnlab error that names the value and what is
accepted, never a TypeError, AttributeError or IndexError from inside, and nothing that passes in silence (NaN
weights, integer weights cast to floats, tensors skipped by ``strict=False``)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import cnnlab
from cnnlab.errors import ModelArgumentError, WeightsError


def tiny(**kwargs: Any) -> torch.nn.Module:
    return cnnlab.create_model("cifar_resnet20", layers=[1, 1, 1], widths=[4, 8, 8], **kwargs)


def floats(state: dict[str, torch.Tensor], change: Any) -> dict[str, torch.Tensor]:
    """``state`` with ``change`` applied to its floating-point tensors (weights, norms' statistics)."""
    return {k: change(v) if v.is_floating_point() else v for k, v in state.items()}


def test_in_chans_in_the_model_arguments_builds_that_model() -> None:
    model = cnnlab.build_model("cifar_resnet20", {"in_chans": 1})
    assert model.stem.conv.in_channels == 1 and model.num_classes == 10  # the variant's classes
    model = cnnlab.build_model("cifar_resnet20", {"num_classes": 4, "in_chans": 2}, num_classes=4)
    assert (model.stem.conv.in_channels, model.num_classes) == (2, 4)  # the same value twice is one value


def test_a_size_given_twice_with_two_values_is_refused() -> None:
    with pytest.raises(ModelArgumentError, match=r"cifar_resnet20: in_chans is given twice, 1 in the model arguments"):
        cnnlab.build_model("cifar_resnet20", {"in_chans": 1}, in_chans=3)


@pytest.mark.parametrize("kwargs", [[0.2], "drop_rate=0.2", {1: 2}])
def test_model_arguments_that_are_not_a_mapping_are_refused(kwargs: Any) -> None:
    with pytest.raises(ModelArgumentError, match=r"must be a mapping of argument names to values, such as"):
        cnnlab.build_model("cifar_resnet20", kwargs)


def test_a_misshaped_counter_is_skipped_and_reported_with_strict_false() -> None:
    model = tiny()
    source = tiny().state_dict()
    source["stem.bn.num_batches_tracked"] = torch.zeros(1, 1, 1, 1, dtype=torch.long)  # 4-d, as a conv weight
    report = cnnlab.load_pretrained(model, source, strict=False)
    assert report.skipped == ["stem.bn.num_batches_tracked"] and report.loaded == len(source) - 1
    assert "skipped, another shape than the model's (left as initialised): stem.bn.num_batches_tracked" in str(report)
    with pytest.raises(WeightsError, match=r"1 tensors have other shapes .*num_batches_tracked: \(1, 1, 1, 1\)"):
        cnnlab.load_pretrained(model, source)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_and_the_model_keeps_its_own(bad: float) -> None:
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    source = tiny().state_dict()
    source["S2.S2U1.conv1.conv.weight"][0, 0, 0, 0] = bad  # one value of one tensor is enough
    with pytest.raises(WeightsError, match=r"NaN or infinite values in 1 of its \d+ floating-point tensors \(first: "
                       r"S2.S2U1.conv1.conv.weight\)"):  # fmt: skip
        cnnlab.load_pretrained(model, source)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_integer_weights_are_refused_not_cast() -> None:
    source = floats(tiny().state_dict(), lambda v: (v * 100).to(torch.int8))
    n = sum(1 for v in tiny().state_dict().values() if v.is_floating_point())
    with pytest.raises(WeightsError, match=rf"{n} tensors hold integers where the model's weights are floating point "
                       r"\(stem.conv.weight is int8;.*dequantize them first"):  # fmt: skip
        cnnlab.load_pretrained(tiny(), source)


def test_weights_of_another_float_dtype_load_and_the_cast_is_reported() -> None:
    source = tiny().state_dict()
    model = tiny()
    report = cnnlab.load_pretrained(model, floats(source, lambda v: v.to(torch.float16)))
    n = sum(1 for v in source.values() if v.is_floating_point())
    assert report.converted == {"float16": n} and f"converted to the model's dtype: {n} from float16" in str(report)
    for k, v in model.state_dict().items():  # the values float16 holds, as float32
        expected = source[k].to(torch.float16).to(v.dtype) if v.is_floating_point() else source[k]
        assert v.dtype == source[k].dtype and torch.equal(v, expected), k
