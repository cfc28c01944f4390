"""Reference tests for the dense-prediction blocks: ASPP against plain convolutions with zero-inserted ("à trous")
kernels, the context module at its identity initialisation, DUC against the reshape it stands for, the dense
heads' classifier contract, and the receptive fields the analyzer gives them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.layers import (
    ASPP,
    CONTEXT_RATES,
    DUC,
    ContextModule,
    DeepLabHead,
    DUCHead,
    FCNHead,
    ImagePooling,
    upsample,
)
from cnnlab.models import init_weights
from tests.helpers import count_params, randomize_norm_stats


def atrous_kernel(weight: torch.Tensor, rate: int) -> torch.Tensor:
    """A k x k kernel spread to ``(k - 1) * rate + 1`` with zeros between its taps (Chen et al. 2017, Eq. 1:
    y[i] = sum_k x[i + rate * k] w[k])."""
    o, i, k, _ = weight.shape
    wide = torch.zeros(o, i, (k - 1) * rate + 1, (k - 1) * rate + 1)
    wide[:, :, ::rate, ::rate] = weight
    return wide


def conv_bn_relu(branch: nn.Module, x: torch.Tensor, kernel: torch.Tensor, padding: int) -> torch.Tensor:
    """A ConvBnAct branch computed with a plain ``F.conv2d`` and the branch's own norm."""
    return F.relu(branch.bn(F.conv2d(x, kernel, padding=padding)))


# ---------------------------------------------------------------------------------------------- ASPP


@pytest.mark.parametrize("rates", [(1,), (2,), (1, 3), (6, 12, 18)])
@pytest.mark.parametrize("image_pooling", [False, True])
def test_aspp_equals_plain_convs_with_zero_inserted_kernels(rates: tuple[int, ...], image_pooling: bool) -> None:
    """Each atrous branch is a plain conv whose kernel has ``rate - 1`` zeros between taps; at rate 1 it is the
    plain 3x3 conv branch itself. Image pooling is the 1x1 conv-BN-ReLU of the map's mean, the same everywhere."""
    aspp = randomize_norm_stats(ASPP(4, 6, rates=rates, image_pooling=image_pooling)).eval()
    x = torch.randn(2, 4, 9, 11)
    with torch.no_grad():
        branches = [conv_bn_relu(aspp.branch1x1, x, aspp.branch1x1.conv.weight, 0)]
        for r, branch in zip(rates, aspp.branch3x3, strict=True):
            branches.append(conv_bn_relu(branch, x, atrous_kernel(branch.conv.weight, r), padding=r))
        if image_pooling:
            pool = aspp.image_pool.conv
            pooled = conv_bn_relu(pool, x.mean(dim=(2, 3), keepdim=True), pool.conv.weight, 0)
            branches.append(pooled.expand(-1, -1, 9, 11))
        cat = torch.cat(branches, dim=1)
        expected = conv_bn_relu(aspp.project, cat, aspp.project.conv.weight, 0)
        torch.testing.assert_close(aspp(x), expected)
    assert aspp(x).shape == (2, 6, 9, 11)  # every branch keeps the size


def test_aspp_rate_one_branch_is_a_plain_3x3_conv() -> None:
    aspp = ASPP(4, 6, rates=(1,))
    conv = aspp.branch3x3[0].conv
    plain = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    assert (conv.kernel_size, conv.padding, conv.dilation, conv.bias) == (
        plain.kernel_size,
        plain.padding,
        (1, 1),
        None,
    )


def test_image_pooling_is_constant_over_the_map() -> None:
    pool = randomize_norm_stats(ImagePooling(3, 5)).eval()
    with torch.no_grad():
        out = pool(torch.randn(2, 3, 7, 6))
    assert out.shape == (2, 5, 7, 6)
    torch.testing.assert_close(out, out[:, :, :1, :1].expand_as(out))  # bilinear from 1x1: equal up to rounding


def test_aspp_counts_and_arguments() -> None:
    """torchvision's ASPP on ResNet's 2048 channels: 1x1 + three 3x3 + pooling 1x1 to 256, the 1280 -> 256 1x1
    (15,535,104 parameters in torchvision's ``ASPP(2048, [12, 24, 36])`` too)."""
    aspp = ASPP(2048, 256, rates=(12, 24, 36))
    convs = 2048 * 256 + 3 * 2048 * 256 * 9 + 2048 * 256 + 5 * 256 * 256
    norms = 6 * 2 * 256  # the five branches' and the projection's batch norms
    assert count_params(aspp) == convs + norms == 15_535_104
    with pytest.raises(cnnlab.ModelArgumentError, match="ASPP rates must be a list of integers"):
        ASPP(4, 4, rates=3)  # type: ignore[arg-type]
    with pytest.raises(cnnlab.ModelArgumentError, match="ASPP rate must be an integer >= 1, got 0"):
        ASPP(4, 4, rates=(1, 0))


# ---------------------------------------------------------------------------------------------- context module


def test_context_module_at_identity_init_returns_its_input() -> None:
    """Yu & Koltun's identity initialisation: every layer passes its input, so the module returns a non-negative
    input unchanged (and max(x, 0) of any input, through the seven truncations)."""
    module = ContextModule(5)
    x = torch.randn(2, 5, 20, 20)
    with torch.no_grad():
        torch.testing.assert_close(module(x.abs()), x.abs(), rtol=0, atol=0)
        torch.testing.assert_close(module(x), x.clamp_min(0), rtol=0, atol=0)
    assert [m.conv.dilation[0] for m in list(module)[:-1]] == list(CONTEXT_RATES) == [1, 1, 2, 4, 8, 16, 1]
    assert count_params(module) == 7 * (5 * 5 * 9 + 5) + 5 * 5 + 5  # C channels in and out at every layer


def test_context_module_keeps_its_identity_init_inside_a_model() -> None:
    """A model's He initialisation (init_weights) gives the context module back its identity initialisation."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), ContextModule(4))
    init_weights(net)
    x = torch.rand(1, 4, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(net[1](x), x, rtol=0, atol=0)
    random = ContextModule(4, identity_init=False)
    init_weights(random)
    assert not torch.equal(random.conv1.conv.weight, ContextModule(4).conv1.conv.weight)


def test_context_module_receptive_fields_are_the_papers() -> None:
    """Table 1: 3, 5, 9, 17, 33, 65, 67 after the seven 3x3 layers, 67 after the 1x1."""
    report = cnnlab.analyze(ContextModule(2), (2, 80, 80))
    convs = [r for r in report.layers if r.kind == "Conv2d"]
    assert [r.rf[0] for r in convs] == [3, 5, 9, 17, 33, 65, 67, 67]
    assert report.receptive_field == (67, 67) and report.jump == (1, 1)


# ---------------------------------------------------------------------------------------------- DUC


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_duc_output_is_the_input_size_times_the_scale(scale: int) -> None:
    duc = DUC(6, 3, scale)
    assert duc(torch.randn(2, 6, 5, 7)).shape == (2, 3, 5 * scale, 7 * scale)
    assert duc.conv.out_channels == scale * scale * 3 and duc.conv.kernel_size == (3, 3)


def test_duc_is_the_reshape_of_the_papers_fig_1() -> None:
    """Output channel c at (y * d + i, x * d + j) is conv channel c * d^2 + i * d + j at (y, x)."""
    d, c = 3, 2
    duc = DUC(4, c, d)
    x = torch.randn(1, 4, 5, 6)
    with torch.no_grad():
        out, scores = duc(x), duc.conv(x)
    for ch in range(c):
        for i in range(d):
            for j in range(d):
                torch.testing.assert_close(out[0, ch, i::d, j::d], scores[0, ch * d * d + i * d + j], rtol=0, atol=0)


def test_duc_receptive_field_after_a_strided_front_end() -> None:
    """Behind a 4x4/4 conv (field 4, jump 4), DUC's 3x3 conv sees 4 + 2 * 4 = 12 pixels; the pixel shuffle puts
    the outputs one pixel apart (jump 1) without widening the field, at the input's size."""
    net = nn.Sequential(nn.Conv2d(1, 4, 4, stride=4), DUC(4, 2, 4))
    report = cnnlab.analyze(net, (1, 16, 16))
    assert report.receptive_field == (12, 12) and report.jump == (1, 1) and not report.unsupported
    assert report.layers[-1].output_shape == (1, 2, 16, 16)


# ---------------------------------------------------------------------------------------------- heads


@pytest.mark.parametrize(
    ("head", "hidden"),
    [
        (lambda n: FCNHead(64, n), 16),  # a quarter of the channels, torchvision's
        (lambda n: DeepLabHead(64, n, rates=(1, 2), chs=32), 32),
        (lambda n: DeepLabHead(64, n, rates=(1, 2), chs=32, refine=False), 32),
        (lambda n: DUCHead(64, n, scale=4), 64),
    ],
)
def test_dense_heads_keep_the_classifier_contract(head: object, hidden: int) -> None:
    """forward(x, pre_logits=True) is hidden_size wide; reset(n) gives a fresh classifier of n * k * k * hidden + n
    weights (k: the classifier's kernel; DUC's predicts scale^2 sub-pixels per class) and keeps the rest; with
    0 classes the head returns its pre-logits, the hidden layers unchanged."""
    h = head(7).eval()  # type: ignore[operator]
    scale = getattr(h, "scale", 1)
    k = getattr(h, "kernel_size", 1)
    x = torch.randn(2, 64, 6, 6)
    with torch.no_grad():
        assert h(x).shape == (2, 7, 6 * scale, 6 * scale)
        pre_logits = h(x, pre_logits=True)
        assert pre_logits.shape == (2, hidden, 6, 6) and h.hidden_size == hidden
        body = count_params(h) - (7 * scale**2 * k * k * hidden + 7 * scale**2)
        h.reset(3)
        assert h(x).shape == (2, 3, 6 * scale, 6 * scale)
        h.reset(0)
        assert torch.equal(h(x), pre_logits) and h.hidden_size == hidden and count_params(h) == body
        h.reset(5)
        assert h(x).shape == (2, 5, 6 * scale, 6 * scale)
        assert count_params(h) == body + 5 * scale**2 * (k * k * hidden + 1)


def test_upsample_is_bilinear_and_the_identity_at_the_same_size() -> None:
    x = torch.randn(1, 2, 4, 5)
    assert torch.equal(upsample(x, (4, 5)), x)
    torch.testing.assert_close(upsample(x, (8, 10)), F.interpolate(x, scale_factor=2, mode="bilinear"))
