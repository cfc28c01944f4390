"""The Inception family: exact counts (REFERENCE.md), the papers' arithmetic, auxiliary heads, input sizes."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnlab
from cnnlab.layers import ConvBnAct, InceptionResNetBlock
from cnnlab.layers.inception_v1 import GOOGLENET_3A, GOOGLENET_WIDTHS, InceptionV1
from cnnlab.layers.named import plain_model_kwargs
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
    # Cadene's bninception (the Caffe port), 11,295,240, less one bias per conv output channel (10,016): see
    # test_bn_inception_is_the_caffe_port_without_conv_biases
    ("bn_inception", {}, 11_285_224),
    # the small nets for 28-60 px (10 classes): their docstrings' figures
    ("googlenet_small", {}, 528_998),
    ("googlenet_small", {"aux_logits": False}, 252_754),
    ("googlenet_small", {"inception_layer": "inception_naive"}, 2_726_462),
    ("googlenet_small", {"inception_layer": "inception_naive", "aux_logits": False}, 2_434_346),
    ("inception_resnet_small", {}, 278_650),
    ("inception_resnet_small", {"width_mult": 4.0}, 4_378_570),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "params"), REFERENCE_PARAMS, ids=[f"{n}-{k}" for n, k, _ in REFERENCE_PARAMS]
)
def test_reference_parameter_counts(name: str, kwargs: dict[str, Any], params: int) -> None:
    with torch.device("meta"):
        assert count_params(cnnlab.build_model(name, kwargs=kwargs)) == params


def macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass (PyTorch counts 2 FLOPs per MAC)."""
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def test_googlenet_macs_match_the_paper_budget_and_torchvision() -> None:
    """Sec. 5: "a computational budget of 1.5 billion multiply-adds at inference time"; REFERENCE.md: 1.498 GMACs
    (torchvision's ``_meta``), exactly torchvision's own GoogLeNet counted the same way."""
    import torchvision

    with torch.device("meta"):
        x = torch.empty(1, 3, 224, 224)
        counted = macs(cnnlab.create_model("googlenet").eval(), x)
        peer = macs(torchvision.models.googlenet(aux_logits=False, init_weights=False).eval(), x)
    assert counted == peer and round(counted / 1e9, 3) == 1.498 and round(counted / 1e9, 1) == 1.5


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


TABLE_1_DEEPEST_PATH = (
    (7, 2), (3, 2), (1, 1), (3, 1), (3, 2),  # conv 7x7/2, max pool 3x3/2, conv 3x3 (its 1x1 reduce first), max pool
    (1, 1), (5, 1), (1, 1), (5, 1),  # 3a, 3b: the 5x5 branch, 1x1 reduce then 5x5, is a module's deepest path
    (3, 2), *((1, 1), (5, 1)) * 5,  # max pool 3x3/2, 4a-4e
    (3, 2), *((1, 1), (5, 1)) * 2,  # max pool 3x3/2, 5a, 5b
)  # fmt: skip
"""GoogLeNet's Table 1 up to the last 7x7 map, as (kernel, stride) along the path of the largest field."""


def test_googlenet_paper_has_table_1s_receptive_field() -> None:
    """Table 1's layers give the last map a field of 715 pixels (Araujo et al. 2019, Eq. 2: each layer widens it
    by (kernel - 1) times the product of the strides before it), which ``googlenet_paper`` has; torchvision's 2x2/2
    pool before (5a) widens it by 1 x 16 where Table 1's 3x3/2 does by 2 x 16 (699 with the 5x5 branches), and
    ``googlenet`` with its 3x3 branches has less again. All give Table 1's 7x7 map at 224."""
    field, jump = 1, 1
    for kernel, stride in TABLE_1_DEEPEST_PATH:
        field, jump = field + (kernel - 1) * jump, jump * stride
    assert (field, jump) == (715, 32)
    with torch.device("meta"):
        nets = {
            "paper": cnnlab.create_model("googlenet_paper"),
            "paper with 2x2": cnnlab.create_model("googlenet_paper", maxpool4=2),
            "torchvision": cnnlab.create_model("googlenet"),
        }
        for net in nets.values():
            assert net.forward_features(torch.empty(1, 3, 224, 224)).shape[-2:] == (7, 7)
    fields = {k: cnnlab.analyze(net).receptive_field for k, net in nets.items()}
    assert fields["paper"] == (715, 715) and fields["paper with 2x2"] == (715 - 16, 715 - 16)
    assert fields["torchvision"][0] < 715 - 16
    with pytest.raises(cnnlab.ModelArgumentError, match=r"maxpool4 must be 2 .* or 3"):
        cnnlab.create_model("googlenet", maxpool4=4)


@pytest.mark.parametrize("name", ["googlenet", "googlenet_small", "inception_v3"])
def test_auxiliary_heads_in_training_only(name: str) -> None:
    """Training mode returns the logits and one output per auxiliary head, eval mode plain logits (shapes only:
    on the meta device)."""
    with torch.device("meta"):
        model = cnnlab.create_model(name, num_classes=5, aux_logits=True)
        x = torch.empty(2, 3, model.min_input_size, model.min_input_size)
        out = model.train()(x)
        assert isinstance(out, LogitsWithAux) and out.logits.shape == (2, 5)
        assert [a.shape for a in out.aux] == [(2, 5)] * (1 if name == "inception_v3" else 2)
        plain = model.eval()(x)
        assert type(plain) is torch.Tensor and plain.shape == (2, 5)  # the logits alone, not wrapped
        off = cnnlab.create_model(name, num_classes=5, aux_logits=False).train()
        plain = off(x)
        assert type(plain) is torch.Tensor and plain.shape == (2, 5)
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
        ("googlenet_paper", {}, 31, 1),  # Table 1's 3x3/2 pool before (5a) needs a 2x2 map there
        ("inception_v3", {}, 75, 1),
        ("inception_v3", {"aux_logits": True}, 299, 8),  # the auxiliary head needs the 17x17 grid
        ("inception_v4", {}, 75, 1),
        ("inception_resnet_v1", {}, 75, 1),
        ("inception_resnet_v2", {}, 75, 1),
        ("bn_inception", {}, 7, 1),
        ("googlenet_small", {"num_classes": 1000}, 8, 1),
        ("inception_resnet_small", {"num_classes": 1000}, 15, 1),
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


def test_bn_inception_is_the_caffe_port_without_conv_biases() -> None:
    """Cadene's ``bninception`` (about 11.3M, 11,295,240) has the same layers with a bias on every conv, which
    batch norm makes redundant; Figure 5's output sizes at 224, stage by stage."""
    with torch.device("meta"):
        model = cnnlab.create_model("bn_inception")
        conv_channels = sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d))
        maps = model.as_features()(torch.empty(1, 3, 224, 224))
        assert model.forward_head(maps[-1]).shape == (1, 1000)
    assert count_params(model) + conv_channels == 11_295_240
    assert [m.shape[1:] for m in maps] == [(192, 56, 56), (320, 28, 28), (608, 14, 14), (1024, 7, 7)]
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (5, 5) for m in model.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == sum(
        isinstance(m, nn.Conv2d) for m in model.modules()
    )  # batch norm after every conv
    assert model.head_modules == ("head",) and model.head.drop.p == 0.0  # no aux heads; "Remove Dropout"


FIGURE_5_OUTPUTS = {"3a": 256, "3b": 320, "3c": 576, "4a": 576, "4b": 576, "4c": 608, "4d": 608, "4e": 1056,
                    "5a": 1024, "5b": 1024}  # fmt: skip


def test_bn_inception_modules_have_figure_5s_output_widths() -> None:
    with torch.device("meta"):
        model = cnnlab.create_model("bn_inception")
    stages = {n: model.get_submodule(s) for s, names in
              (("inception3", "3a 3b"), ("inception4", "3c 4a 4b 4c 4d"), ("inception5", "4e 5a 5b"))
              for n in names.split()}  # fmt: skip
    assert {n: getattr(stages[n], n).out_chs for n in FIGURE_5_OUTPUTS} == FIGURE_5_OUTPUTS
    pools = {n: type(getattr(stages[n], n).branch_pool).__name__ for n in ("3a", "3c", "5b")}
    assert pools == {"3a": "Sequential", "3c": "MaxPool2d", "5b": "Sequential"}  # 3c: pass through
    assert isinstance(model.inception5.get_submodule("5b").branch_pool[0], nn.MaxPool2d)
    assert isinstance(model.inception5.get_submodule("5a").branch_pool[0], nn.AvgPool2d)


def test_googlenet_small_naive_modules_grow_by_their_input() -> None:
    """The naive module's pool passes its input through: each module adds c1x1 + c3x3 + c5x5 to its input's
    width (the reduced one outputs its Table 1 row's sum); the naive net costs over 5x the MACs at 42 px."""
    names = ("3a", "3b", "4a", "4d", "5a", "5b")
    rows = [GOOGLENET_WIDTHS[n].scaled(0.25) for n in names]
    with torch.device("meta"):
        naive = cnnlab.build_model("googlenet_small", kwargs={"inception_layer": "inception_naive"}).eval()
        reduced = cnnlab.create_model("googlenet_small").eval()
        x = torch.empty(1, 3, 42, 42)
        assert macs(naive, x) > 5 * macs(reduced, x)
    assert reduced.num_features == rows[-1].out_chs == 256
    assert naive.num_features == 48 + sum(w.c1x1 + w.c3x3 + w.c5x5 for w in rows) == 836
    assert all(m.naive for m in naive.modules() if isinstance(m, InceptionV1))
    naive_layer = {"name": "inception", "naive": True}  # how a config or checkpoint holds it
    assert plain_model_kwargs({"inception_layer": partial(InceptionV1, naive=True)}) == {"inception_layer": naive_layer}
    assert not any(m.naive for m in reduced.modules() if isinstance(m, InceptionV1))
    assert naive.aux1.conv.conv.in_channels == naive.feature_info[2].num_chs  # the heads tap 4a and 4d
    assert reduced.aux2.conv.conv.in_channels == reduced.feature_info[3].num_chs == 132


def test_inception_resnet_small_scales_every_residual_and_widens() -> None:
    with torch.device("meta"):
        model = cnnlab.create_model("inception_resnet_small", residual_scale=0.2)
        wide = cnnlab.create_model("inception_resnet_small", width_mult=4.0)
        maps = model.as_features()(torch.empty(1, 3, 42, 42))
    blocks = [m for m in model.modules() if isinstance(m, InceptionResNetBlock)]
    assert len(blocks) == 6 and {b.scale for b in blocks} == {0.2}
    assert [m.shape[1:] for m in maps] == [(64, 20, 20), (64, 20, 20), (128, 9, 9), (256, 4, 4)]
    assert [f.num_chs for f in wide.feature_info] == [256, 256, 512, 1024]  # "more than 1000 filters"
    with pytest.raises(cnnlab.ModelArgumentError, match="width_mult must be a number > 0"):
        cnnlab.create_model("inception_resnet_small", width_mult=0)
