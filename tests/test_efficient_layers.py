"""Reference tests for the efficiency and connectivity layers, each against an independent computation
(F.conv2d, nn.Conv2d, an impulse response through real layers) or the papers' arithmetic."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision.ops import deform_conv2d

from cnnlab.errors import CnnlabWarning, GriddingWarning, ModelArgumentError
from cnnlab.layers import (
    ChannelShuffle,
    DeformConv2d,
    DenseBlock,
    DenseLayer,
    DepthwiseSeparableConv,
    DilatedConvStack,
    InvertedResidual,
    ShuffleV1Unit,
    ShuffleV2Unit,
    Transition,
    channel_shuffle,
    hdc_check,
    make_divisible,
)
from cnnlab.layers.dilated import find_cycle, hdc_max_distances
from tests.helpers import count_params

# ---------------------------------------------------------------------------------------------- depthwise


def test_depthwise_conv_is_a_per_channel_loop() -> None:
    layer = DepthwiseSeparableConv(5, 7, kernel_size=3, stride=2).eval()
    x = torch.randn(2, 5, 9, 9)
    conv = layer.depthwise.conv
    loop = torch.cat([F.conv2d(x[:, c : c + 1], conv.weight[c : c + 1], stride=2, padding=1) for c in range(5)], 1)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), loop)
        assert layer(x).shape == (2, 7, 5, 5)


def test_depthwise_separable_cost_is_1_over_n_plus_1_over_k2() -> None:
    """Weights (and MACs per pixel) of dw + pw against the standard conv: 1/N + 1/k^2 (MobileNet Sec. 3.1)."""
    m, n, k = 32, 64, 3
    layer = DepthwiseSeparableConv(m, n, kernel_size=k)
    weights = layer.depthwise.conv.weight.numel() + layer.pointwise.conv.weight.numel()
    assert weights / (k * k * m * n) == pytest.approx(1 / n + 1 / k**2)
    assert not layer.depthwise.conv.bias and not layer.pointwise.conv.bias


# ---------------------------------------------------------------------------------------------- shuffle


@settings(max_examples=30, deadline=None)
@given(groups=st.integers(1, 6), per_group=st.integers(1, 6))
def test_channel_shuffle_interleaves_groups_and_inverts(groups: int, per_group: int) -> None:
    c = groups * per_group
    x = torch.arange(c, dtype=torch.float32).view(1, c, 1, 1).expand(2, c, 3, 3).contiguous()
    y = channel_shuffle(x, groups)
    origin = (y[0, :, 0, 0].long() // per_group).tolist()  # which old group each new channel came from
    for new_group in range(groups):  # the next group conv splits y into groups of per_group channels
        members = origin[new_group * per_group : (new_group + 1) * per_group]
        if per_group % groups == 0:  # then every new group holds per_group / groups channels of each old one
            assert sorted(members) == sorted(list(range(groups)) * (per_group // groups))
    assert origin == [k % groups for k in range(c)]  # one channel of every old group, in turn
    torch.testing.assert_close(channel_shuffle(y, per_group), x)
    torch.testing.assert_close(ChannelShuffle(groups)(x), y)


def test_channel_shuffle_rejects_indivisible_channels() -> None:
    with pytest.raises(ModelArgumentError, match="do not split into 4 groups"):
        channel_shuffle(torch.randn(1, 6, 2, 2), 4)


def test_shufflenet_units_shapes_and_channels() -> None:
    x = torch.randn(2, 24, 8, 8)
    assert ShuffleV1Unit(24, 240, stride=2, groups=3, first_groups=1)(x).shape == (2, 240, 4, 4)
    unit = ShuffleV1Unit(240, 240, groups=3)
    assert unit(torch.randn(2, 240, 8, 8)).shape == (2, 240, 8, 8)
    assert unit.conv1.conv.groups == 3 and unit.conv2.conv.groups == 60 and unit.conv3.conv.groups == 3
    assert ShuffleV2Unit(24, 116, stride=2)(x).shape == (2, 116, 4, 4)
    assert ShuffleV2Unit(116, 116)(torch.randn(2, 116, 4, 4)).shape == (2, 116, 4, 4)
    with pytest.raises(ModelArgumentError, match="not divisible by 8 groups"):
        ShuffleV1Unit(200, 200, groups=8)


def test_shufflenet_v2_unit_passes_half_the_channels_through() -> None:
    """At stride 1 the first half of the input reaches the output unchanged, at the even channels."""
    unit = ShuffleV2Unit(8, 8).eval()
    x = torch.randn(1, 8, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(unit(x)[:, 0::2], x[:, :4])


# ---------------------------------------------------------------------------------------------- dense


@pytest.mark.parametrize(("in_chs", "layers", "k"), [(24, 16, 12), (64, 6, 32), (3, 1, 5)])
def test_dense_block_grows_by_k_per_layer(in_chs: int, layers: int, k: int) -> None:
    block = DenseBlock(in_chs, layers, k).eval()
    x = torch.randn(2, in_chs, 6, 6)
    with torch.no_grad():
        y = block(x)
    assert y.shape == (2, in_chs + layers * k, 6, 6) and block.out_chs == in_chs + layers * k
    torch.testing.assert_close(y[:, :in_chs], x)  # the block input is carried through unchanged
    first = block.layer1
    assert first.conv1.conv.weight.shape == (4 * k, in_chs, 1, 1) and first.conv2.conv.weight.shape == (k, 4 * k, 3, 3)


def test_dense_layer_and_transition_shapes() -> None:
    assert DenseLayer(10, 4)(torch.randn(1, 10, 5, 5)).shape == (1, 14, 5, 5)
    assert DenseLayer(10, 4, bn_size=0).conv2.conv.weight.shape == (4, 10, 3, 3)
    t = Transition(45, theta=0.5)
    assert t.out_chs == 22 and t(torch.randn(1, 45, 8, 8)).shape == (1, 22, 4, 4)
    assert Transition(45, theta=1.0)(torch.randn(1, 45, 7, 7)).shape == (1, 45, 3, 3)


# ---------------------------------------------------------------------------------------------- dilated


def impulse_offsets(rates: list[int], kernel_size: int = 3) -> set[tuple[int, int]]:
    """Input pixels that reach the centre output through real dilated convs with positive weights."""
    radius = (kernel_size - 1) // 2 * sum(rates)
    size = 2 * radius + 1
    convs = []
    for r in rates:
        conv = nn.Conv2d(1, 1, kernel_size, padding=r * (kernel_size - 1) // 2, dilation=r, bias=False)
        nn.init.ones_(conv.weight)
        convs.append(conv)
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    nn.Sequential(*convs)(x)[0, 0, radius, radius].backward()
    return {(int(i) - radius, int(j) - radius) for i, j in x.grad[0, 0].nonzero()}


def test_dilated_3x3_covers_a_5x5_field() -> None:
    reached = impulse_offsets([2])
    assert reached == {(i, j) for i in (-2, 0, 2) for j in (-2, 0, 2)}  # 9 taps spread over 5x5


@pytest.mark.parametrize("rates", [[1, 2, 5], [2, 2, 2], [1, 2, 9], [2, 4, 8], [1, 3, 1], [1, 2, 3], [3], [1, 1, 4]])
def test_hdc_exact_answer_matches_the_impulse_response(rates: list[int]) -> None:
    report = hdc_check(rates)
    radius = sum(rates)
    holes = set(report.holes)
    expected = {(i, j) for i in range(-radius, radius + 1) for j in range(-radius, radius + 1)}
    expected = {(i, j) for i, j in expected if i not in holes and j not in holes}
    assert impulse_offsets(rates) == expected
    assert report.exact.ok == (not holes)


@pytest.mark.parametrize(
    ("rates", "ok"), [([1, 2, 5], True), ([1, 2, 3], True), ([1, 2, 9], False), ([2, 4, 8], False), ([2, 2, 2], False)]
)
def test_hdc_rule_on_the_papers_examples(rates: list[int], ok: bool) -> None:
    assert hdc_check(rates, 3).paper.ok is ok


def test_hdc_reasons() -> None:
    assert "M_2 = 5 > K = 3" in hdc_check([1, 2, 9]).paper.reason
    r222 = hdc_check([2, 2, 2])
    assert "factor 2" in r222.paper.reason and "M_2" not in r222.paper.reason  # M_2 = 2 passes; the factor fails
    assert r222.holes == (-5, -3, -1, 1, 3, 5) and "-5, -3, -1, 1, 3, 5" in r222.exact.reason
    text = str(hdc_check([1, 3, 1]))
    assert "FAILS" in text and "every offset of the 11x11" in text


def test_hdc_rule_is_sufficient_but_stricter_than_needed() -> None:
    """Over every rate triple up to 9 the rule never accepts a stack with holes; some it rejects have none."""
    stricter = []
    for rates in itertools.product(range(1, 10), repeat=3):
        report = hdc_check(rates)
        assert not (report.paper.ok and not report.exact.ok), rates
        if report.exact.ok and not report.paper.ok:
            stricter.append(rates)
    assert (1, 3, 1) in stricter and (1, 2, 5) not in stricter


@pytest.mark.parametrize(
    ("rates", "cycle"),
    [([1, 2, 5, 1, 2, 5], 3), ([1, 2, 5], 3), ([2, 2, 2], 3), ([1, 2, 1, 2, 1, 2], 2), ([1, 2, 5, 1, 2], 5), ([4], 1)],
)
def test_find_cycle(rates: list[int], cycle: int) -> None:
    assert find_cycle(rates) == cycle


def test_hdc_rule_applies_to_each_group_of_the_cycle() -> None:
    """Wang et al. state the rule for one group and repeat it ([1, 2, 5, 1, 2, 5]); over the whole sequence the
    recursion gives M_2 = 5 > 3, which once made this stack fail while it has no hole."""
    assert hdc_max_distances([1, 2, 5, 1, 2, 5])[1] == 5
    report = hdc_check([1, 2, 5, 1, 2, 5])
    assert report.groups == ((1, 2, 5), (1, 2, 5)) and all(v.ok for v in report.group_verdicts)
    assert report.paper.ok and report.exact.ok
    assert "M_2 = 2 <= K = 3" in report.paper.reason and "cycle [1, 2, 5] x 2" in str(report)
    assert "no holes, as the rule guarantees" in str(report)


def test_hdc_names_the_group_that_fails() -> None:
    report = hdc_check([1, 2, 5, 2, 4, 8], group=3)
    assert report.groups == ((1, 2, 5), (2, 4, 8)) and [v.ok for v in report.group_verdicts] == [True, False]
    assert not report.paper.ok and report.exact.ok  # the exact answer stays beside it
    expected = "group 2 [2, 4, 8]: the first rate is 2, not 1; the rates share the factor 2; M_2 = 4 > K = 3"
    assert report.paper.reason == expected
    assert "sufficient, not necessary" in report.conclusion
    shorter = hdc_check([1, 2, 5, 1, 2], group=3)  # the last group may be shorter
    assert shorter.groups == ((1, 2, 5), (1, 2)) and shorter.paper.ok
    with pytest.raises(ModelArgumentError, match="group must be an integer from 1 to the 3 rates, got 4"):
        hdc_check([1, 2, 5], group=4)


@pytest.mark.parametrize(
    ("rates", "rule", "exact", "conclusion"),
    [
        ([2, 2, 2], False, False, "holes, as the rule warns"),
        ([1, 2, 3], True, True, "no holes, as the rule guarantees"),  # M_2 = 2: the paper's own example
        ([1, 3, 1], False, True, "the rule is sufficient, not necessary"),  # M_2 = 5, yet every offset is reached
    ],
)
def test_hdc_conclusions(rates: list[int], rule: bool, exact: bool, conclusion: str) -> None:
    report = hdc_check(rates)
    assert report.groups == (tuple(rates),) and report.grouping == "on the whole stack"
    assert (report.paper.ok, report.exact.ok) == (rule, exact)
    assert conclusion in report.conclusion and f"so: {report.conclusion}" in str(report)


def test_hdc_check_rejects_bad_arguments() -> None:
    with pytest.raises(ModelArgumentError, match="rates"):
        hdc_check([1, 0, 2])
    with pytest.raises(ModelArgumentError, match="odd"):
        hdc_check([1, 2], kernel_size=2)


def test_dilated_stack_keeps_size_and_warns_on_holes() -> None:
    assert issubclass(GriddingWarning, CnnlabWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stack = DilatedConvStack(4, [1, 2, 5])
    assert stack(torch.randn(1, 4, 11, 13)).shape == (1, 4, 11, 13)
    assert [m.conv.dilation for m in stack] == [(1, 1), (2, 2), (5, 5)] and stack.hdc.paper.ok
    with pytest.warns(GriddingWarning, match="never reached"):
        DilatedConvStack(4, [2, 2, 2])


# ---------------------------------------------------------------------------------------------- deformable


@pytest.mark.parametrize(("stride", "dilation", "groups"), [(1, 1, 1), (2, 1, 1), (1, 2, 2), (2, 3, 1)])
def test_zero_offset_deformable_conv_is_nn_conv2d(stride: int, dilation: int, groups: int) -> None:
    deform = DeformConv2d(4, 6, 3, stride=stride, dilation=dilation, groups=groups, offset_groups=2)
    conv = nn.Conv2d(4, 6, 3, stride=stride, padding=dilation, dilation=dilation, groups=groups)
    conv.load_state_dict({"weight": deform.weight, "bias": deform.bias})
    x = torch.randn(2, 4, 11, 11)
    assert deform.offset.out_channels == 2 * 2 * 9 and torch.count_nonzero(deform.offset.weight) == 0
    with torch.no_grad():
        torch.testing.assert_close(deform(x), conv(x))
        ones = torch.ones(2, 2 * 9, *conv(x).shape[-2:])
        zeros = torch.zeros(2, 2 * 2 * 9, *conv(x).shape[-2:])
        torch.testing.assert_close(
            deform_conv2d(x, zeros, deform.weight, deform.bias, stride, dilation, dilation, mask=ones), conv(x)
        )


@pytest.mark.parametrize(
    ("stride", "padding", "dilation", "groups", "offset_groups", "modulated"),
    [(1, 1, 1, 1, 1, False), (2, 1, 1, 2, 2, True), (1, 2, 2, 1, 4, False), (2, 0, 3, 4, 1, True)],
)
def test_deformable_conv_equals_torchvision_at_random_offsets(
    stride: int, padding: int, dilation: int, groups: int, offset_groups: int, modulated: bool
) -> None:
    """Our grid_sample sampling against torchvision.ops.deform_conv2d: fractional offsets of up to +-4 pixels
    (many land outside the input), outputs and all four gradients."""
    from cnnlab.layers.deformable import deform_conv2d as ours

    g = torch.Generator().manual_seed(stride + 10 * dilation + groups)
    x = torch.randn(2, 8, 9, 10, generator=g, requires_grad=True)
    weight = torch.randn(12, 8 // groups, 3, 3, generator=g, requires_grad=True)
    bias = torch.randn(weight.shape[0], generator=g, requires_grad=True)
    out_h = (9 + 2 * padding - dilation * 2 - 1) // stride + 1
    out_w = (10 + 2 * padding - dilation * 2 - 1) // stride + 1
    offset = (8 * torch.rand(2, 2 * offset_groups * 9, out_h, out_w, generator=g) - 4).requires_grad_()
    mask = torch.rand(2, offset_groups * 9, out_h, out_w, generator=g).requires_grad_() if modulated else None
    geometry = ((stride, stride), (padding, padding), (dilation, dilation))
    inputs = [t for t in (x, offset, weight, bias, mask) if t is not None]
    expected = deform_conv2d(x, offset, weight, bias, *geometry, mask=mask)
    got = ours(x, offset, weight, bias, *geometry, mask)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    upstream = torch.randn(expected.shape, generator=g)
    for a, b in zip(
        torch.autograd.grad(got, inputs, upstream), torch.autograd.grad(expected, inputs, upstream), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


def test_deformable_conv_samples_in_float32_under_autocast_and_takes_channels_last() -> None:
    """bfloat16 autocast must not round the sampling positions (torchvision's kernel computes in float32), and
    channels-last inputs with several offset groups give the contiguous result."""
    from cnnlab.layers.deformable import deform_conv2d as ours

    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8, 40, 40, generator=g)
    weight = torch.randn(8, 8, 3, 3, generator=g)
    offset = 6 * torch.rand(2, 2 * 2 * 9, 40, 40, generator=g) - 3
    geometry = ((1, 1), (1, 1), (1, 1))
    expected = ours(x, offset, weight, None, *geometry, None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = ours(x, offset.bfloat16(), weight, None, *geometry, None)  # an offset conv's output under autocast
    assert got.dtype == torch.float32
    rounded = ours(x, offset.bfloat16().float(), weight, None, *geometry, None)
    torch.testing.assert_close(got, rounded)  # computed as in float32: only the offsets' own rounding remains
    last = ours(*(t.contiguous(memory_format=torch.channels_last) for t in (x, offset)), weight, None, *geometry, None)
    torch.testing.assert_close(last, expected)


def test_modulated_deformable_conv_starts_at_half_the_conv() -> None:
    """v2: the zero-initialised mask conv gives sigmoid(0) = 0.5 on every sampled value."""
    deform = DeformConv2d(3, 5, 3, bias=False, modulated=True)
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=False)
    conv.weight.data.copy_(deform.weight)
    x = torch.randn(1, 3, 7, 7)
    assert deform.mask.out_channels == 9
    with torch.no_grad():
        torch.testing.assert_close(deform(x), 0.5 * conv(x))


@pytest.mark.parametrize(("dy", "dx"), [(1, 0), (0, -2), (2, 1), (-1, -1)])
def test_constant_integer_offset_is_a_conv_of_the_shifted_input(dy: int, dx: int) -> None:
    deform = DeformConv2d(3, 4, 3)
    with torch.no_grad():
        deform.offset.bias.copy_(torch.tensor([dy, dx] * 9, dtype=torch.float32))
    x = torch.randn(2, 3, 9, 10)
    # the zero-extended input shifted by (dy, dx): shifted[i, j] = x[i + dy, j + dx], taken with the conv's
    # 1-pixel padding included, so border outputs still read real pixels that the shift brings in
    padded = F.pad(x, (5, 5, 5, 5))
    shifted = padded[:, :, 4 + dy : 4 + dy + 11, 4 + dx : 4 + dx + 12]
    with torch.no_grad():
        expected = F.conv2d(shifted, deform.weight, deform.bias)
        torch.testing.assert_close(deform(x), expected)


# ---------------------------------------------------------------------------------------------- other


def test_inverted_residual_shortcut_and_expansion() -> None:
    block = InvertedResidual(16, 16, expand_ratio=6)
    assert block.use_shortcut and block.conv_pw.conv.weight.shape == (96, 16, 1, 1)
    assert not hasattr(block.conv_pwl, "act")  # the linear bottleneck
    assert not InvertedResidual(16, 24, stride=1).use_shortcut and not InvertedResidual(16, 16, stride=2).use_shortcut
    t1 = InvertedResidual(32, 16, expand_ratio=1)
    assert count_params(t1) == 32 * 9 + 2 * 32 + 32 * 16 + 2 * 16
    assert t1(torch.randn(1, 32, 6, 6)).shape == (1, 16, 6, 6)


@pytest.mark.parametrize(
    ("value", "divisor", "expected"),
    [(24, 8, 24), (32 * 0.75, 8, 24), (10, 8, 16), (12, 8, 16), (136, 16, 144), (4, 8, 8), (1280, 8, 1280)],
)
def test_make_divisible(value: float, divisor: int, expected: int) -> None:
    assert make_divisible(value, divisor) == expected


def test_separable_conv2d_is_a_depthwise_then_pointwise_conv_with_a_convs_signature() -> None:
    from cnnlab.layers.depthwise_separable import SeparableConv2d

    sep = SeparableConv2d(8, 16, 3, stride=2, padding=1, bias=False)
    assert count_params(sep) == 3 * 3 * 8 + 8 * 16  # k*k*M + M*N weights: the 1/N + 1/k^2 of the notes
    x = torch.randn(2, 8, 9, 9)
    want = F.conv2d(F.conv2d(x, sep.depthwise.weight, stride=2, padding=1, groups=8), sep.pointwise.weight)
    torch.testing.assert_close(sep(x), want)
    with pytest.raises(ModelArgumentError, match="its own grouping"):
        SeparableConv2d(8, 16, 3, groups=2)


def test_cifar_resnet_takes_a_conv_class_per_stage_by_name() -> None:
    from cnnlab.layers import DeformConv2d
    from cnnlab.layers.depthwise_separable import SeparableConv2d
    from cnnlab.registry import build_model

    with torch.device("meta"):
        model = build_model("cifar_resnet20", {"stage_conv_layers": ["conv", "separable", "deformable"]})
    kinds = {j: {type(m.conv1.conv) for m in model.get_submodule(f"S{j}")} for j in (1, 2, 3)}
    assert kinds == {1: {nn.Conv2d}, 2: {SeparableConv2d}, 3: {DeformConv2d}}


@pytest.mark.parametrize("shuffle", [True, False])
def test_without_channel_shuffle_each_group_sees_only_its_own_inputs(shuffle: bool) -> None:
    """ShuffleNet Fig. 1(a): stacked group convs without a shuffle keep every output group a function of one
    input group; the shuffle (Fig. 1(b)-(c)) lets each see them all."""
    from cnnlab.layers.shuffle_unit import ShuffleV1Unit

    g, c = 3, 48  # 12 bottleneck channels, 4 per group: enough for a shuffled group to take one from each
    unit = ShuffleV1Unit(c, c, groups=g, shuffle=shuffle).eval()
    x = torch.randn(1, c, 6, 6)
    moved = x.clone()
    moved[:, : c // g] += 1.0  # change the first input group only
    with torch.no_grad():
        out = [unit(v) for v in (x, moved)]  # relu(branch(v) + v): an unchanged input group moves with its branch
    changed = (out[0] - out[1]).abs().amax(dim=(0, 2, 3)) > 1e-6
    per_group = changed.view(g, c // g).any(1).tolist()
    assert per_group == ([True, True, True] if shuffle else [True, False, False])


def test_the_analyzer_counts_a_deformable_net_on_the_meta_device() -> None:
    """The analyzer builds models on the meta device, which has no autocast: the deformable conv must run there,
    and its MACs are the conv's (the matrix product of the sampled columns) plus the offset conv's."""
    import cnnlab
    from cnnlab.registry import build_model

    kwargs = {"stage_conv_layers": ["conv", "conv", "deformable"]}
    with torch.device("meta"):
        deform = build_model("cifar_resnet20", kwargs, num_classes=10, in_chans=1)
        plain = build_model("cifar_resnet20", {}, num_classes=10, in_chans=1)
    a, b = cnnlab.analyze(deform, (1, 42, 42)), cnnlab.analyze(plain, (1, 42, 42))
    offsets = sum(m.offset.weight.numel() for m in deform.modules() if isinstance(m, DeformConv2d)) * 11 * 11
    assert a.macs - b.macs == offsets  # six 64-channel offset convs at 11x11; the sampled conv costs as the conv
