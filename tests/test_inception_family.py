"""The Inception family: exact counts (REFERENCE.md), the papers' arithmetic, auxiliary heads, input sizes."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnlab
from cnnlab.layers import ConvBnAct
from cnnlab.layers.inception_v1 import GOOGLENET_3A, GOOGLENET_WIDTHS, InceptionV1
from cnnlab.models.base import LogitsWithAux
from tests.helpers import count_params, randomize_norm_stats

# torchvision 0.29.1 _meta and timm, as listed in ../shared/REFERENCE.md.
REFERENCE_PARAMS = [
    ("googlenet", {"aux_logits": False}, 6_624_904),
    ("googlenet", {"aux_logits": True}, 13_004_888),
    ("inception_v3", {"aux_logits": True}, 27_161_264),
    ("inception_v3", {"aux_logits": False}, 23_834_568),
    ("inception_v4", {}, 42_679_816),
    ("inception_resnet_v2", {}, 55_843_464),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "params"), REFERENCE_PARAMS, ids=[f"{n}-{k}" for n, k, _ in REFERENCE_PARAMS]
)
def test_reference_parameter_counts(name: str, kwargs: dict[str, bool], params: int) -> None:
    with torch.device("meta"):
        assert count_params(cnnlab.create_model(name, **kwargs)) == params


def macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass (PyTorch counts 2 FLOPs per MAC)."""
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def test_googlenet_macs_match_the_paper_budget() -> None:
    """Sec. 5: "a computational budget of 1.5 billion multiply-adds at inference time"."""
    with torch.device("meta"):
        model = cnnlab.create_model("googlenet").eval()
        assert macs(model, torch.empty(1, 3, 224, 224)) == pytest.approx(1.5e9, rel=0.10)


def test_naive_module_costs_what_the_reductions_save() -> None:
    """Inception (3a) on 28x28x192, naive (Fig. 2a) against dimension-reduced (Fig. 2b): the difference is the
    MACs of the big convs on all 192 channels minus those of the reduce/proj 1x1s and of the big convs on
    the reduced channels."""
    w, c, hw = GOOGLENET_3A, 192, 28 * 28
    naive = c * w.c1x1 + c * w.c3x3 * 9 + c * w.c5x5 * 25  # the pool costs no MACs
    reduced = (
        c * w.c1x1
        + c * w.c3x3_reduce
        + w.c3x3_reduce * w.c3x3 * 9
        + c * w.c5x5_reduce
        + w.c5x5_reduce * w.c5x5 * 25
        + c * w.pool_proj
    )
    x = torch.empty(1, c, 28, 28, device="meta")
    with torch.device("meta"):
        naive_module, reduced_module = InceptionV1(c, w, naive=True), InceptionV1(c, w)
        assert naive_module(x).shape == (1, w.c1x1 + w.c3x3 + w.c5x5 + c, 28, 28)
        assert reduced_module(x).shape == (1, w.out_chs, 28, 28) == (1, 256, 28, 28)
        assert macs(naive_module, x) - macs(reduced_module, x) == (naive - reduced) * hw


def test_5x5_reduction_arithmetic_of_the_design_notes() -> None:
    """REFERENCE.md: 28x28x192 -> 32 channels by a 5x5: about 120 M multiplies; with a 1x1 to 16 first: 12.4 M."""
    x = torch.empty(1, 192, 28, 28, device="meta")
    with torch.device("meta"):
        direct = macs(nn.Conv2d(192, 32, 5, padding=2, bias=False), x)
        reduced = macs(nn.Sequential(nn.Conv2d(192, 16, 1, bias=False), nn.Conv2d(16, 32, 5, padding=2, bias=False)), x)
    assert direct == pytest.approx(120e6, rel=0.01)
    assert reduced == pytest.approx(12.4e6, rel=0.01)


def test_paper_5x5_branches_add_the_expected_weights() -> None:
    """``googlenet_paper`` differs from torchvision's layout only by 5x5 instead of 3x3 in the "5x5" branches:
    (25 - 9) weights per channel pair of every such conv of Table 1."""
    extra = sum(w.c5x5_reduce * w.c5x5 * (25 - 9) for w in GOOGLENET_WIDTHS.values())
    with torch.device("meta"):
        paper, tv = cnnlab.create_model("googlenet_paper"), cnnlab.create_model("googlenet")
    assert count_params(paper) - count_params(tv) == extra


@pytest.mark.parametrize("name", ["googlenet", "inception_v3"])
def test_auxiliary_heads_in_training_only(name: str) -> None:
    """Training mode returns the logits and one output per auxiliary head, eval mode plain logits (shapes only:
    on the meta device)."""
    with torch.device("meta"):
        model = cnnlab.create_model(name, num_classes=5, aux_logits=True)
        x = torch.empty(2, 3, model.min_input_size, model.min_input_size)
        out = model.train()(x)
        assert isinstance(out, LogitsWithAux) and out.logits.shape == (2, 5)
        assert [a.shape for a in out.aux] == [(2, 5)] * (2 if name == "googlenet" else 1)
        assert isinstance(model.eval()(x), torch.Tensor)
        off = cnnlab.create_model(name, num_classes=5, aux_logits=False).train()
        assert isinstance(off(x), torch.Tensor)
        model.reset_classifier(3)
        assert all(a.shape == (2, 3) for a in model.train()(x).aux)
    assert model.aux_loss_weight == 0.3


def test_googlenet_aux_heads_tap_4a_and_4d() -> None:
    with torch.device("meta"):
        model = cnnlab.create_model("googlenet")
    assert model.aux1.conv.conv.in_channels == GOOGLENET_WIDTHS["4a"].out_chs == 512
    assert model.aux2.conv.conv.in_channels == GOOGLENET_WIDTHS["4d"].out_chs == 528
    assert model.head_modules == ("head", "aux1", "aux2")
    with torch.device("meta"):
        assert cnnlab.create_model("googlenet", aux_logits=False).head_modules == ("head",)


def test_auxiliary_heads_load_from_torchvision() -> None:
    """The auxiliary classifiers get torchvision's weights too and compute the same on the taps."""
    import torchvision

    for name, tv_name, tv_aux, ours_aux, tap in (
        ("googlenet", "googlenet", "aux2", "aux2", (2, 528, 14, 14)),
        ("inception_v3", "inception_v3", "AuxLogits", "aux", (2, 768, 17, 17)),
    ):
        peer = torchvision.models.get_model(tv_name, weights=None, aux_logits=True, init_weights=False)
        peer = randomize_norm_stats(peer).eval()
        model = cnnlab.create_model(name, aux_logits=True).eval()
        report = cnnlab.load_pretrained(model, peer)
        assert report.loaded == len(model.state_dict()) and not report.new_head
        x = torch.randn(tap)
        with torch.no_grad():
            torch.testing.assert_close(getattr(model, ours_aux)(x), getattr(peer, tv_aux)(x))


def test_transform_input_matches_torchvision() -> None:
    import torchvision

    peer = torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=False)
    peer = randomize_norm_stats(peer).eval()
    model = cnnlab.create_model("googlenet", aux_logits=False, transform_input=True).eval()
    cnnlab.load_pretrained(model, peer)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), peer(x))
    with pytest.raises(cnnlab.ModelArgumentError, match="in_chans=3"):
        cnnlab.create_model("googlenet", in_chans=1, transform_input=True)


@pytest.mark.parametrize(
    ("name", "kwargs", "minimum", "last_grid"),
    [
        ("googlenet", {}, 15, 1),
        ("inception_v3", {}, 75, 1),
        ("inception_v3", {"aux_logits": True}, 299, 8),  # the auxiliary head needs the 17x17 grid
        ("inception_v4", {}, 75, 1),
        ("inception_resnet_v1", {}, 75, 1),
        ("inception_resnet_v2", {}, 75, 1),
    ],
)
def test_smallest_input(name: str, kwargs: dict[str, bool], minimum: int, last_grid: int) -> None:
    """The documented minimum runs (down to a 1x1 last grid) and one pixel less is refused with a clear error."""
    with torch.device("meta"):
        model = cnnlab.create_model(name, **kwargs).eval()
        assert model.min_input_size == minimum
        features = model.forward_features(torch.empty(1, 3, minimum, minimum))
        assert features.shape[-2:] == (last_grid, last_grid)
        assert model.forward_head(features).shape == (1, 1000)
        with pytest.raises(cnnlab.InputShapeError, match=f"H, W >= {minimum}.*too small"):
            model(torch.empty(1, 3, minimum - 1, minimum))


def test_inception_resnet_v1_layout() -> None:
    """Fig. 14-15: 256-channel stem at 35x35, 5 / 10 / 5 blocks of widths 256 / 896 / 1792."""
    with torch.device("meta"):
        model = cnnlab.create_model("inception_resnet_v1")
    assert [(f.num_chs, f.reduction) for f in model.feature_info] == [(256, 8), (256, 8), (896, 16), (1792, 32)]
    assert [len(model.get_submodule(f"stage_{s}.blocks")) for s in "abc"] == [5, 10, 5]
    assert [model.get_submodule(f"stage_{s}.blocks.0").scale for s in "abc"] == [0.17, 0.10, 0.20]
    with pytest.raises(cnnlab.ModelArgumentError, match="INCEPTION_RESNET_V1 or _V2"):
        cnnlab.create_model("inception_resnet_v1", variant=1)


def test_googlenet_without_batch_norm_as_in_the_paper() -> None:
    """The paper predates batch norm: BN-free convs carry a bias (1 parameter per channel) instead of BN's
    weight and bias (2 per channel)."""
    with torch.device("meta"):
        bn = cnnlab.create_model("googlenet_paper", aux_logits=False)
        plain = cnnlab.create_model("googlenet_paper", aux_logits=False, conv_layer=partial(ConvBnAct, norm_layer=None))
    conv_channels = sum(m.out_channels for m in bn.modules() if isinstance(m, nn.Conv2d))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert count_params(bn) - count_params(plain) == conv_channels
