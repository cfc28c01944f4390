"""Receptive fields from the real graph, against first principles (Araujo et al., Distill 2019, Eq. 1-2)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import cnnlab
from cnnlab.analysis import Field, analyze, merge, stack_field


def convs(rates: list[int], chs: int = 4) -> nn.Sequential:
    return nn.Sequential(*[nn.Conv2d(chs, chs, 3, padding=r, dilation=r) for r in rates])


@pytest.mark.parametrize(("n", "rf"), [(1, 3), (2, 5), (3, 7)])
def test_stacked_3x3_fields(n: int, rf: int) -> None:
    report = analyze(convs([1] * n), (4, 32, 32))
    assert report.receptive_field == (rf, rf) and report.jump == (1, 1)
    assert stack_field([3] * n) == rf


def test_dilated_1_2_5_is_17() -> None:
    assert analyze(convs([1, 2, 5]), (4, 40, 40)).receptive_field == (17, 17)
    assert stack_field([3, 3, 3], dilations=[1, 2, 5]) == 1 + 2 * 1 + 2 * 2 + 2 * 5


def test_strides_multiply_the_jump() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 7, stride=2, padding=3), nn.MaxPool2d(3, 2, 1), nn.Conv2d(4, 4, 3, padding=1))
    report = analyze(net, (3, 64, 64))
    # 7; 7 + (3-1)*2 = 11 at jump 4; 11 + (3-1)*4 = 19
    assert [r.rf for r in report.layers] == [(7, 7), (11, 11), (19, 19)]
    assert [r.jump for r in report.layers] == [(2, 2), (4, 4), (4, 4)]


def test_asymmetric_kernels_per_axis() -> None:
    net = nn.Sequential(nn.Conv2d(2, 2, (1, 7), padding=(0, 3)), nn.Conv2d(2, 2, (7, 1), padding=(3, 0)))
    assert [r.rf for r in analyze(net, (2, 16, 16)).layers] == [(1, 7), (7, 7)]


class TwoBranches(nn.Module):
    """An Inception-like concatenation of a 1x1 and a 5x5 branch, then a residual addition of a 3x3 pair."""

    def __init__(self) -> None:
        super().__init__()
        self.branch1x1 = nn.Conv2d(4, 2, 1)
        self.branch5x5 = nn.Conv2d(4, 2, 5, padding=2)
        self.conv_a = nn.Conv2d(4, 4, 3, padding=1)
        self.conv_b = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.cat([self.branch1x1(x), self.branch5x5(x)], 1)
        return y + self.conv_b(self.conv_a(y))


class MaxOfBranches(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 7, padding=3)

    def forward(self, x: Tensor) -> Tensor:
        return torch.max(self.a(x), self.b(x)).mean((2, 3))


def test_elementwise_max_and_spatial_mean() -> None:
    report = analyze(MaxOfBranches(), (2, 9, 9))
    assert report.layer("max").rf == (7, 7)
    assert report.layer("mean").rf == (7 + 8, 7 + 8)  # the mean covers the 9x9 map


def test_branches_take_the_largest_field() -> None:
    report = analyze(TwoBranches(), (4, 16, 16))
    assert report.layer("cat").rf == (5, 5)  # max(1, 5)
    assert report.layer("conv_b").rf == (9, 9)  # 5 + 2 + 2
    assert report.layer("add").rf == (9, 9)  # max(5, 9)
    assert merge([Field((3, 5), (1, 2)), Field((7, 1), (2, 1))]) == Field((7, 5), (2, 2))


def _resnet_last_stage_field(layers: tuple[int, ...], *, stride_on_1x1: bool) -> int:
    """First principles: 7x7/2 stem, 3x3/2 pool, then per bottleneck one 3x3 (the 1x1s add nothing); the first
    block of stages 2-4 halves the resolution on its first 1x1 (paper) or on its 3x3 (torchvision)."""
    rf, jump = 7, 2  # stem
    rf, jump = rf + 2 * jump, jump * 2  # max pool
    for stage, blocks in enumerate(layers):
        for b in range(blocks):
            stride = 2 if stage > 0 and b == 0 else 1
            if stride_on_1x1:
                jump *= stride  # 1x1 with stride: no growth, new jump before the 3x3
                rf += 2 * jump
            else:
                rf += 2 * jump  # the 3x3 grows the field at the old jump, then strides
                jump *= stride
    return rf


@pytest.mark.parametrize("stride_in", ["3x3", "1x1"])
def test_resnet50_last_stage_from_first_principles(stride_in: str) -> None:
    with torch.device("meta"):
        model = cnnlab.create_model("resnet50", stride_in=stride_in)
    report = analyze(model, (3, 224, 224))
    expected = _resnet_last_stage_field((3, 4, 6, 3), stride_on_1x1=stride_in == "1x1")
    assert expected == (483 if stride_in == "1x1" else 427)  # Araujo et al. list 483 for ResNet-v1-50
    assert report.receptive_field == (expected, expected)
    assert report.layer("layer4.2.act").rf == (expected, expected)
    assert report.jump == (32, 32)
    assert report.depth == 50


def test_cifar_option_a_strided_slice_and_pad() -> None:
    """ResNet-20 with option A: the shortcut subsamples with x[:, :, ::2, ::2] and pads channels."""
    with torch.device("meta"):
        model = cnnlab.create_model("cifar_resnet20")
    report = analyze(model)
    # 3x3 stem, then 6 convs per stage; stages 2 and 3 start with a stride-2 conv
    rf, jump = 3, 1
    for stage in range(3):
        for conv in range(6):
            rf += 2 * jump
            jump *= 2 if stage > 0 and conv == 0 else 1
    assert report.receptive_field == (rf, rf) == (81, 81)
    assert not report.unsupported and report.depth == 20


def test_unsupported_layer_is_named_never_1x1() -> None:
    net = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.PixelUnshuffle(2), nn.Conv2d(12, 3, 3, padding=1))
    report = analyze(net, (3, 8, 8))
    assert report.unsupported == {"PixelUnshuffle": ["1"]}
    assert [r.rf for r in report.layers] == [(3, 3), None, None]
    assert "unsupported       'PixelUnshuffle' at 1" in report.table()
    assert report.layers[-1].rf_label == "?"


def test_global_pool_covers_the_map_and_se_gate_keeps_depth() -> None:
    with torch.device("meta"):
        model = cnnlab.create_model("se_resnet50")
    report = analyze(model)
    assert report.depth == 50  # the SE gate's FCs sit on a 1x1 side branch (SENet counts SE-ResNet-50 as 50)
    pool = report.layer("layer1.0.attn.mean")
    assert pool.rf is not None and pool.rf[0] >= 224  # the squeeze sees the whole image


# Araujo, Norris and Sim, "Computing Receptive Fields of Convolutional Neural Networks" (Distill 2019), Table 1.
@pytest.mark.parametrize(("name", "rf"), [("resnet101", 1027), ("resnet152", 1507)])
def test_paper_resnets_match_published_fields(name: str, rf: int) -> None:
    with torch.device("meta"):
        model = cnnlab.create_model(name, stride_in="1x1")  # the paper's (and TF-slim's) v1 placement
    assert analyze(model).receptive_field == (rf, rf)


@pytest.mark.parametrize(("name", "rf", "size"), [("mobilenet_v2", 491, 224), ("inception_v3", 1311, 299)])
def test_torchvision_branching_nets_match_published_fields(name: str, rf: int, size: int) -> None:
    tvm = pytest.importorskip("torchvision.models")
    kwargs = {"aux_logits": False, "init_weights": False} if name == "inception_v3" else {}
    with torch.device("meta"):
        model = getattr(tvm, name)(**kwargs)
    report = analyze(model, (3, size, size))
    assert report.receptive_field == (rf, rf) and not report.unsupported


def test_a_conv_that_covers_the_map_is_a_layer_not_a_pooling() -> None:
    """LeNet-5's C5 is a 5x5 conv on a 5x5 map: it counts as a layer, and the field runs through it."""
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.AvgPool2d(2),  # 32 -> 28 -> 14 -> 10 -> 5
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Conv2d(120, 84, 1), nn.Flatten(), nn.Linear(84, 10),
    )  # fmt: skip
    report = analyze(net, (1, 32, 32))
    assert report.depth == 5  # C1, C3, C5, F6, output
    assert report.receptive_field == (32, 32)  # 5; 6 (j2); 6 + 4*2 = 14; 16 (j4); 16 + 4*4 = 32


@pytest.mark.parametrize(
    ("name", "rf", "depth"),
    [
        ("mobilenet_v1", 315, 28),  # Araujo et al. Table 1; MobileNet paper: 28 layers
        ("mobilenet_v2", 491, None),
        ("inception_v3", 1311, None),
        ("inception_v4", 2071, None),
        ("inception_resnet_v2", 3039, None),
        ("googlenet", None, 22),  # GoogLeNet paper: "22 layers deep when counting only layers with parameters"
        ("vgg19", None, 19),
    ],
)
def test_registered_families_match_published_fields_and_depths(name: str, rf: int | None, depth: int | None) -> None:
    if name not in cnnlab.list_models():
        pytest.skip(f"{name} is not registered in this build")
    with torch.device("meta"):
        model = cnnlab.create_model(name)
    report = analyze(model)
    assert not report.unsupported
    if rf is not None:
        assert report.receptive_field == (rf, rf)
    if depth is not None:
        assert report.depth == depth


class Upsampled(nn.Module):
    """A 2x2/2 conv, then interpolation back to the input's size (a segmentation net's last step)."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.conv, self.mode = nn.Conv2d(1, 1, 2, stride=2), mode

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.interpolate(self.conv(x), size=x.shape[-2:], mode=self.mode)


def support_width(net: nn.Module, size: int, at: int) -> int:
    """Width of the input pixels whose gradient reaches output unit (at, at), through the real layers."""
    for p in net.parameters():
        nn.init.constant_(p, 1.0)
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    net(x)[0, 0, at, at].backward()
    cols = x.grad[0, 0].abs().sum(0).nonzero()  # type: ignore[union-attr]
    return int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize(("mode", "rf"), [("bilinear", 4), ("nearest", 2), ("bicubic", 8)])
def test_interpolation_widens_the_field_by_its_taps(mode: str, rf: int) -> None:
    """Bilinear upsampling reads two neighbouring units per axis (one jump more: 2 + 2), nearest one, bicubic four
    (2 + 3 * 2); the output units are one input pixel apart. An interior output unit's gradient agrees."""
    net = Upsampled(mode)
    report = analyze(net, (1, 16, 16))
    assert report.receptive_field == (rf, rf) and report.jump == (1, 1) and not report.unsupported
    assert support_width(net, 16, 7) == rf
    module = nn.Sequential(nn.Conv2d(1, 1, 2, stride=2), nn.Upsample(scale_factor=2, mode=mode))  # the module form
    assert analyze(module, (1, 16, 16)).receptive_field == (rf, rf)


def test_a_dense_output_reports_the_field_of_its_units() -> None:
    """A map-valued model with a global pooling inside (ASPP's image pooling) reports its output units' field,
    the whole map; a classifier reports the field of the map its last global pooling reads."""
    from cnnlab.layers import ASPP

    dense = analyze(nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), ASPP(4, 4, rates=(1,))), (3, 16, 16))
    # the conv: 3 at jump 2; the 3x3 branch: 3 + 2 * 2 = 7; image pooling: a kernel of the 8-unit map, 3 + 7 * 2
    assert dense.receptive_field == (17, 17) and dense.jump == (2, 2)
    classifier = analyze(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten()), 8)
    assert classifier.receptive_field == (3, 3)
