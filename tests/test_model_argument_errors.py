"""Bad model arguments and inputs from Python: a cnnlab error that names the value and what is accepted,
raised where the value enters (the registry for types, the layer that uses it for ranges), never an error
from deep inside torch. Models are built on the meta device: only their constructors' checks matter here."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import torch

import cnnlab
from cnnlab.analysis.gridding import gridding_map
from cnnlab.errors import AnalysisError, CnnlabError, InputShapeError, ModelArgumentError
from cnnlab.layers import (
    ChannelShuffle,
    ConvBnAct,
    DeformConv2d,
    DenseLayer,
    DilatedConvStack,
    SqueezeExcite,
    channel_shuffle,
    hdc_check,
)
from cnnlab.registry import model_entry


def build(name: str, **kwargs: Any) -> torch.nn.Module:
    with torch.device("meta"):
        return cnnlab.create_model(name, **kwargs)


WRONG_TYPES = [  # refused by the registry, from the annotations of the model class and the builder
    ("cifar_resnet20", {"drop_rate": "abc"}, "cifar_resnet20: drop_rate must be a number, got 'abc' (str)"),
    ("cifar_resnet20", {"layers": 3}, "layers must be a tuple or list of integers, got 3 (int)"),
    ("cifar_resnet20", {"layers": (3, "a", 3)}, "layers must be a tuple or list of integers, got (3, 'a', 3)"),
    ("cifar_resnet20", {"num_classes": 2.5}, "num_classes must be an integer, got 2.5 (float)"),
    ("resnet18", {"shortcut": "D"}, "shortcut must be one of 'A', 'B', 'C', got 'D' (str)"),
    ("resnet18", {"plain": "yes"}, "plain must be True or False, got 'yes' (str)"),
    (
        "resnet18",
        {"attn_layer": "se"},
        "attn_layer must be a callable (a layer class or a functools.partial) or None",
    ),
    ("resnet18", {"block": "basic"}, "block must be a subclass of ResidualBlock, got 'basic' (str)"),
    ("resnet50", {"stride_in": 1}, "stride_in must be one of '1x1', '3x3', got 1 (int)"),
    ("densenet121", {"stem": "x"}, "stem must be one of 'imagenet', 'cifar', got 'x' (str)"),
    ("mobilenet_v2", {"width_mult": "1"}, "width_mult must be a number, got '1' (str)"),
    ("cifar_residual_net", {"net_width": 1.5}, "net_width must be an integer, got 1.5 (float)"),  # the builder's
    ("inception_resnet_v2", {"scales": (0.1, 0.2)}, "scales must be a tuple of 3 numbers, got (0.1, 0.2)"),
]
OUT_OF_RANGE = [  # refused by the layer or model that uses the value
    ("cifar_resnet20", {"drop_rate": 1.5}, "ClassifierHead drop_rate must be a probability in [0, 1), got 1.5"),
    ("cifar_resnet20", {"drop_rate": -0.1}, "drop_rate must be a probability in [0, 1), got -0.1"),
    ("alexnet", {"drop_rate": 1.0}, "FcHead drop_rate must be a probability in [0, 1), got 1.0"),
    ("googlenet", {"aux_drop_rate": 2.0}, "AuxClassifier drop_rate must be a probability in [0, 1), got 2.0"),
    (
        "resnet18",
        {"attn_layer": partial(SqueezeExcite, reduction=0)},
        "SqueezeExcite reduction must be an integer >= 1, got 0",
    ),
    (
        "cifar_resnet20",
        {"attn_layer": partial(SqueezeExcite, reduction=32)},
        "reduction 32 leaves 16 // 32 = 0 hidden units; use a reduction of at most 16",
    ),
    ("cifar_resnet20", {"widths": (-16, 32, 64)}, "ConvBnAct 3 -> -16: out_chs must be an integer >= 1, got -16"),
    ("cifar_resnet20", {"widths": (0, 32, 64)}, "out_chs must be an integer >= 1, got 0"),
    ("cifar_resnet20", {"layers": (0, 2, 2)}, "blocks per stage must be an integer >= 1, got 0"),
    ("resnet18", {"stem_width": 0}, "out_chs must be an integer >= 1, got 0"),
    ("resnet50", {"groups": 0}, "groups must be an integer >= 1, got 0"),
    ("resnet50", {"base_width": -4}, "base_width must be an integer >= 1, got -4"),
    (
        "resnet50",
        {"stage_dilations": ((1,) * 3, (1,) * 4, (1,) * 6, (0, 1, 1))},
        "dilation must be an integer >= 1, got 0",
    ),
    ("densenet121", {"growth_rate": 0}, "growth_rate must be an integer >= 1, got 0"),
    ("densenet121", {"bn_size": -1}, "out_chs must be an integer >= 1, got -32"),
    ("mobilenet_v2", {"width_mult": 0}, "width_mult must be a number > 0, got 0"),
    ("shufflenet_v1_g3_x1_0", {"width_mult": -1.0}, "width_mult must be a number > 0, got -1.0"),
    ("googlenet", {"kernel_5x5": 0}, "kernel_size must be an integer >= 1, got 0"),
    ("resnet18", {"in_chans": 0}, "in_chans must be an integer >= 1, got 0"),
]


@pytest.mark.parametrize(("name", "kwargs", "expected"), WRONG_TYPES + OUT_OF_RANGE)
def test_bad_model_arguments_name_the_value_and_what_fits(name: str, kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(ModelArgumentError) as e:
        build(name, **kwargs)
    assert expected in str(e.value)


@pytest.mark.parametrize(
    ("make", "error", "expected"),
    [
        (lambda: ConvBnAct(10, 12, 3, groups=3), ModelArgumentError, "ConvBnAct 10 -> 12: 3 groups must divide both"),
        (lambda: ChannelShuffle(0), ModelArgumentError, "ChannelShuffle groups must be an integer >= 1, got 0"),
        (
            lambda: channel_shuffle(torch.zeros(1, 10, 2, 2), 3),
            ModelArgumentError,
            "10 channels do not split into 3 groups",
        ),
        (
            lambda: DeformConv2d(6, 6, 3, offset_groups=4),
            ModelArgumentError,
            "4 offset groups must divide the 6 input channels",
        ),
        (lambda: SqueezeExcite(16, reduction=-2), ModelArgumentError, "reduction must be an integer >= 1, got -2"),
        (lambda: DenseLayer(8, 4, drop_rate=1.0), ModelArgumentError, "probability in [0, 1), got 1.0"),
        (lambda: hdc_check([1, 0]), ModelArgumentError, "integers >= 1, got [1, 0]"),
        (lambda: hdc_check([10**9]), ModelArgumentError, "2000000001-pixel receptive field; the limit is 4097"),
        (lambda: DilatedConvStack(4, [3000]), ModelArgumentError, "the limit is 4097 pixels (rates summing to at"),
        (lambda: hdc_check([1, 2], kernel_size=2), ModelArgumentError, "kernel_size must be an odd integer >= 1"),
        (lambda: gridding_map([2000]), AnalysisError, "the limit is 8,388,608 (about 1 GB)"),
    ],
)
def test_layers_check_their_knobs(make: Callable[[], object], error: type[CnnlabError], expected: str) -> None:
    with pytest.raises(error) as e:
        make()
    assert expected in str(e.value) and isinstance(e.value, ValueError)


def test_good_values_of_other_types_still_fit() -> None:
    se = partial(SqueezeExcite, reduction=4)
    model = build("cifar_resnet20", layers=[1, 1, 1], widths=[8, 16, 32], drop_rate=0, attn_layer=se, plain=False)
    assert model.num_features == 32  # lists for tuples, an int for a float, a partial for a callable


@pytest.mark.parametrize("name", cnnlab.list_models())
def test_every_argument_annotation_resolves(name: str) -> None:
    """The type check covers every argument: no model's annotations are left unresolved (and so unchecked)."""
    entry = model_entry(name)
    assert set(entry.annotations) == set(entry.accepted_kwargs())


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (torch.uint8, "got torch.uint8; convert with x.float() / 255"),
        (torch.int64, "got torch.int64; convert with x.float()"),
        (torch.bool, "got torch.bool; convert with x.float()"),
    ],
)
def test_a_non_float_input_says_how_to_convert_it(dtype: torch.dtype, expected: str) -> None:
    model = cnnlab.create_model("cifar_resnet20").eval()
    with pytest.raises(InputShapeError) as e:
        model(torch.zeros(1, 3, 32, 32, dtype=dtype))
    assert str(e.value) == f"cifar_resnet20 expects a float tensor of shape (N, 3, H, W) with H, W >= 1; {expected}"
