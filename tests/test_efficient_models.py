"""Exact parameter counts from ../shared/REFERENCE.md and the papers, and the structure of LeNet-5, AlexNet,
VGG, MobileNet, ShuffleNet, DenseNet and the dilated and deformable ResNet-50."""

from __future__ import annotations

import pytest
import torch
import torch.fx
import torchvision
from torch import nn

import cnnlab
from cnnlab.layers import DeformConv2d, ShuffleV1Unit, hdc_check
from cnnlab.models.classic import SparseC3
from cnnlab.models.resnet import HDC_RATES
from tests.helpers import count_params, randomize_norm_stats

# torchvision 0.29.1 _meta and the papers, as listed in REFERENCE.md.
REFERENCE_PARAMS = {
    "alexnet": 61_100_840,
    "alexnet_paper": 60_965_224,  # Caffe's bvlc_alexnet, with the two towers' groups
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848,
    "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg19_bn": 143_678_248,
    "densenet121": 7_978_856,
    "densenet161": 28_681_000,
    "densenet169": 14_149_480,
    "densenet201": 20_013_928,
    "densenet_bc_100_12": 769_162,
    "densenet_bc": 769_162,  # its defaults are L=100, k=12
    "shufflenet_v2_x0_5": 1_366_792,
    "shufflenet_v2_x1_0": 2_278_604,
    "mobilenet_v2": 3_504_872,
    "mobilenet_v1": 4_231_976,
    "resnet50": 25_557_032,  # the dilated ResNet-50 has the same weights
    "dilated_resnet50": 25_557_032,
}


def meta_params(name: str, **kwargs: object) -> int:
    with torch.device("meta"):
        return count_params(cnnlab.create_model(name, **kwargs))


@pytest.mark.parametrize(("name", "params"), REFERENCE_PARAMS.items())
def test_reference_parameter_counts(name: str, params: int) -> None:
    assert meta_params(name) == params


def test_lenet5_layers_and_count() -> None:
    """C1, C3, C5 (5x5 convs), F6 and the output layer, each with a bias: (fan_in + 1) * outputs; the paper's
    C3 has 60 connections of 25 weights (Sec. II.B: 1,516 trainable parameters)."""
    rest = (25 * 1 + 1) * 6 + (25 * 16 + 1) * 120 + (120 + 1) * 84 + (84 + 1) * 10
    assert count_params(cnnlab.create_model("lenet5", c3_table=False)) == rest + (25 * 6 + 1) * 16 == 61_706
    model = cnnlab.create_model("lenet5")
    assert count_params(model.stage2) == 60 * 25 + 16 == 1_516 and count_params(model) == rest + 1_516
    assert model.in_chans == 1 and model.default_input_size == (1, 32, 32)
    assert model.forward_features(torch.randn(2, 1, 32, 32)).shape == (2, 84, 1, 1)  # C5 is 1x1 at 32x32
    with pytest.raises(cnnlab.InputShapeError, match="H, W >= 32"):
        model(torch.randn(1, 1, 28, 28))


@pytest.mark.parametrize(("width", "millions"), [(0.75, 2.6), (0.5, 1.3), (0.25, 0.5)])
def test_mobilenet_v1_width_multiplier(width: float, millions: float) -> None:
    """MobileNet Table 6: 2.6M, 1.3M, 0.5M parameters at widths 0.75, 0.5, 0.25."""
    assert round(meta_params("mobilenet_v1", width_mult=width) / 1e6, 1) == millions
    with pytest.raises(cnnlab.ModelArgumentError, match="width_mult"):
        cnnlab.create_model("mobilenet_v1", width_mult=0)


def test_shufflenet_v1_variants() -> None:
    names = cnnlab.list_models("shufflenet_v1_*")
    expected = {f"shufflenet_v1_g{g}_x{w}" for g in (1, 2, 3, 4, 8) for w in ("0_5", "1_0", "2_0")}
    assert set(names) == expected
    assert round(meta_params("shufflenet_v1_g3_x1_0") / 1e6, 2) == 1.87  # REFERENCE.md: ~1.87M
    model = cnnlab.create_model("shufflenet_v1_g8_x0_5")
    units = [m for m in model.modules() if isinstance(m, ShuffleV1Unit)]
    assert len(units) == 16 and units[0].conv1.conv.groups == 1
    assert all(u.conv3.conv.groups == 8 for u in units) and all(u.conv1.conv.groups == 8 for u in units[1:])
    assert [f.num_chs for f in model.feature_info] == [16, 192, 384, 768]  # stem rounded to a multiple of g
    with pytest.raises(cnnlab.ModelArgumentError, match="groups in"):
        cnnlab.create_model("shufflenet_v1_g3_x1_0", groups=5)


def test_densenet_growth_and_compression() -> None:
    """DenseNet-BC-100-12: 24 stem channels, 16 layers of k=12 per block, compression 0.5."""
    with torch.device("meta"):
        model = cnnlab.create_model("densenet_bc_100_12")
    assert [f.num_chs for f in model.feature_info] == [24, 24 + 192, 108 + 192, 150 + 192]
    assert [f.reduction for f in model.feature_info] == [1, 1, 2, 4]
    weighted = sum(isinstance(m, nn.Conv2d | nn.Linear) for m in model.modules())
    assert weighted == 1 + 3 * 16 * 2 + 2 + 1 == 100  # L: the first conv, 48 two-conv layers, 2 transitions, fc
    assert model(torch.empty(2, 3, 32, 32, device="meta")).shape == (2, 10)


def test_fc_head_without_a_classifier_returns_fc7_as_torchvision_computes_it() -> None:
    """num_classes=0 leaves out the classifier alone: with torchvision's AlexNet weights the output is
    torchvision's fc7 after its ReLU (its classifier without the last layer), 4096 wide; reset_classifier keeps
    fc6 and fc7 whatever the number of classes."""
    peer = torchvision.models.alexnet().eval()
    model = cnnlab.create_model("alexnet", num_classes=0).eval()
    cnnlab.load_pretrained(model, peer)
    x = torch.randn(2, 3, 63, 63)
    with torch.no_grad():
        fc7 = peer.classifier[:-1](torch.flatten(peer.avgpool(peer.features(x)), 1))
        torch.testing.assert_close(model(x), fc7, rtol=0, atol=0)
        model.reset_classifier(10)
        assert model(x).shape == (2, 10) and model.get_classifier().out_features == 10
        torch.testing.assert_close(model.forward_head(model.forward_features(x), pre_logits=True), fc7, rtol=0, atol=0)
        model.reset_classifier(0)
        torch.testing.assert_close(model(x), fc7, rtol=0, atol=0)


def test_vgg_without_a_classifier_is_as_wide_as_timms() -> None:
    """timm's VGG built with num_classes=0 returns its pre-logits (fc7, as a conv), 4096 wide, and so does
    cnnlab's; the map before them has 512 channels in both."""
    timm = pytest.importorskip("timm")
    x = torch.empty(1, 3, 64, 64, device="meta")
    with torch.device("meta"):
        peer = timm.create_model("vgg16", num_classes=0).eval()
        model = cnnlab.create_model("vgg16", num_classes=0).eval()
    assert model(x).shape == peer(x).shape == (1, 4096)
    assert (model.num_features, model.head_hidden_size) == (peer.num_features, peer.head_hidden_size) == (512, 4096)


# ---------------------------------------------------------------------------------------------- dilated, deformable


@pytest.mark.parametrize("output_stride", [8, 16])
def test_dilated_resnet50_rates_pass_hdc(output_stride: int) -> None:
    with torch.device("meta"):
        model = cnnlab.create_model("dilated_resnet50", output_stride=output_stride)
    assert model.feature_info[-1].reduction == output_stride
    for i, rates in enumerate(HDC_RATES[output_stride], start=1):
        stage = model.get_submodule(f"layer{i}")
        assert [blk.conv2.conv.dilation[0] for blk in stage] == list(rates)
        report = hdc_check(rates)
        assert report.paper.ok and report.exact.ok, report
    assert not hdc_check([2, 2, 2]).exact.ok and not hdc_check([4, 4, 4]).exact.ok  # the constant rates grid
    x = torch.empty(1, 3, 64, 64, device="meta")
    assert model.eval().forward_features(x).shape == (1, 2048, 64 // output_stride, 64 // output_stride)
    with pytest.raises(cnnlab.ModelArgumentError, match="output_stride"):
        cnnlab.create_model("dilated_resnet50", output_stride=4)
    with pytest.raises(cnnlab.ModelArgumentError, match="needs 6 dilation rates"):
        cnnlab.create_model("resnet50", stage_dilations=((1,) * 3, (1,) * 4, (1, 2), (1, 2, 3)))
    with pytest.raises(cnnlab.ModelArgumentError, match="4 stages"):
        cnnlab.create_model("resnet50", stage_dilations=((1,) * 3,))


def test_resnet_output_stride_without_rates_uses_the_constant_rate() -> None:
    with torch.device("meta"):
        model = cnnlab.create_model("resnet50", output_stride=8)
    assert [b.conv2.conv.dilation[0] for b in model.layer3] == [2] * 6
    assert [b.conv2.conv.dilation[0] for b in model.layer4] == [4] * 3


def test_dilated_resnet50_loads_torchvision_resnet50() -> None:
    model = cnnlab.create_model("dilated_resnet50")
    report = cnnlab.load_pretrained(model, torchvision.models.resnet50())
    assert report.loaded == len(model.state_dict()) and not report.new_layers


def test_deform_resnet50_starts_as_resnet50() -> None:
    """Zero-initialised offsets: with torchvision's resnet50 weights it computes exactly what resnet50 does."""
    reference = randomize_norm_stats(torchvision.models.resnet50()).eval()
    model = cnnlab.create_model("deform_resnet50").eval()
    deform = [n for n, m in model.named_modules() if isinstance(m, DeformConv2d)]
    assert deform == [f"layer4.{i}.conv2.conv" for i in range(3)]
    assert count_params(model) == 25_557_032 + 3 * (512 * 9 * 18 + 18)  # three offset convs, 2*3*3 channels
    report = cnnlab.load_pretrained(model, reference)
    assert report.new_layers == [f"layer4.{i}.conv2.conv.offset.{p}" for i in range(3) for p in ("weight", "bias")]
    assert report.loaded == len(model.state_dict()) - 6 and not report.new_head
    assert "newly initialised" in str(report)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))


def test_torchvision_peers_are_registered() -> None:
    """Weight compatibility is checked by tests/test_weights.py over every registered peer."""
    expected = {"alexnet", "mobilenet_v2", *cnnlab.list_models("vgg*"), *cnnlab.list_models("densenet1*"),
                *cnnlab.list_models("densenet2*"), *cnnlab.list_models("shufflenet_v2_*")}  # fmt: skip
    have = {n for n, e in cnnlab.model_entries().items() if any(p.library == "torchvision" for p in e.peers)}
    assert len(expected) == 18 and expected <= have


@pytest.mark.parametrize("name", ["shufflenet_v1_g3_x0_5", "shufflenet_v2_x0_5", "deform_resnet50", "alexnet"])
def test_torch_fx_traces_shuffles_deformable_convs_and_fc_heads(name: str) -> None:
    model = cnnlab.create_model(name).eval()
    graph = torch.fx.symbolic_trace(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(graph(x), model(x))


def test_lenet5_c3_reads_only_the_maps_of_table_1() -> None:
    """The gradient of each C3 map's centre reaches exactly the S2 maps its column of Table I marks."""
    c3 = SparseC3()
    table = {  # Table I of LeCun et al. 1998, column by column
        0: "012", 1: "123", 2: "234", 3: "345", 4: "045", 5: "015", 6: "0123", 7: "1234", 8: "2345", 9: "0345",
        10: "0145", 11: "0125", 12: "0134", 13: "1245", 14: "0235", 15: "012345",
    }  # fmt: skip
    for j, maps in table.items():
        x = torch.randn(1, 6, 5, 5, requires_grad=True)
        c3(x)[0, j, 0, 0].backward()
        reached = {i for i in range(6) if x.grad[0, i].abs().sum() > 0}
        assert reached == {int(c) for c in maps}, j


@pytest.mark.parametrize(
    ("name", "gmacs", "digits"),
    [("alexnet", 0.714, 3), ("vgg16", 15.47, 2), ("densenet121", 2.834, 3), ("mobilenet_v1", 0.569, 3),
     ("mobilenet_v2", 0.301, 3), ("shufflenet_v2_x1_0", 0.145, 3), ("shufflenet_v1_g3_x1_0", 0.14, 2)],
)  # fmt: skip
def test_reference_macs(name: str, gmacs: float, digits: int) -> None:
    """GMACs at 224 (REFERENCE.md; MobileNet Table 8: 569M; ShuffleNet Table 2: 140 MFLOPs for 1x g=3)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = cnnlab.create_model(name).eval()
        with FlopCounterMode(display=False) as counter:
            model(torch.randn(1, 3, 224, 224))
    assert round(counter.get_total_flops() / 2e9, digits) == gmacs
