"""Xception (Chollet 2017): Fig. 5's flows and shapes, Table 3's parameter count, and timm's Keras-ported weights
giving the same outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.layers.depthwise_separable import SeparableConv2d
from cnnlab.registry import meta_model
from tests.helpers import count_params, randomize_norm_stats


def test_the_paper_count_and_timms() -> None:
    """Table 3: 22,855,952 parameters; timm's legacy_xception has exactly as many."""
    model = meta_model("xception")
    assert count_params(model) == 22_855_952
    assert count_params(cnnlab.model_entry("xception").peers[0].build()) == 22_855_952


def test_fig5_flows_on_a_299_input() -> None:
    """Entry flow 299 -> 149 -> 147 (unpadded 3x3s) -> 74 -> 37 -> 19 with 728 channels, the middle flow keeps
    19x19x728, the exit flow ends at 10x10x2048; 36 conv layers in the feature extractor (Sec. 4.2), 14 modules."""
    model = meta_model("xception")
    x = torch.empty(1, 3, 299, 299, device="meta")
    shapes = []
    for stage in model.stage_names():
        x = model.get_submodule(stage)(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(64, 147, 147), (128, 74, 74), (256, 37, 37), (728, 19, 19), (728, 19, 19), (2048, 10, 10)]
    separable = sum(isinstance(m, SeparableConv2d) for m in model.modules())
    stem = sum(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) for m in model.stem.modules())
    assert (stem, separable, stem + separable) == (2, 34, 36)
    modules = [m for m in model.modules() if type(m).__name__ == "XceptionModule"]
    assert len(modules) + 2 == 14  # the last "module" of Fig. 5 is the two separable convs after the exit module
    assert [type(m.skip).__name__ for m in modules].count("Identity") == 8  # the middle flow's identity shortcuts


def test_timm_weights_give_the_same_outputs() -> None:
    """timm's legacy_xception with random weights and non-trivial norm statistics, loaded into cnnlab's."""
    peer = randomize_norm_stats(cnnlab.model_entry("xception").peers[0].build()).eval()
    model = cnnlab.create_model("xception").eval()
    report = cnnlab.load_pretrained(model, peer)
    assert report.key_map == "timm" and report.loaded == len(model.state_dict())
    x = torch.randn(2, 3, 71, 90)
    with torch.no_grad():
        torch.testing.assert_close(model(x), peer(x))


def test_smallest_input() -> None:
    """The two unpadded 3x3 convs of the stem (the first at stride 2) need 7 pixels; 6 is refused clearly."""
    model = cnnlab.create_model("xception", num_classes=3).eval()
    assert model.min_input_size == 7
    with torch.no_grad():
        assert model(torch.randn(1, 3, 7, 7)).shape == (1, 3)
        with pytest.raises(cnnlab.InputShapeError, match="H, W >= 7"):
            model(torch.randn(1, 3, 6, 6))
