"""Reference tests for the residual-family blocks: each checked against the paper's arithmetic or an
independent computation, not against itself."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.errors import ModelArgumentError
from cnnlab.layers import (
    BasicBlock,
    Bottleneck,
    ConvBnAct,
    PreActBasicBlock,
    PreActBottleneck,
    SqueezeExcite,
    ZeroPadShortcut,
    make_shortcut,
    same_padding,
)
from cnnlab.registry import create_model
from tests.helpers import count_params, randomize_norm_stats


@settings(max_examples=25, deadline=None)
@given(
    in_chs=st.integers(1, 8),
    extra=st.integers(0, 8),
    stride=st.sampled_from([1, 2, 3]),
    size=st.integers(1, 9),
)
def test_option_a_subsamples_and_pads_with_zeros(in_chs: int, extra: int, stride: int, size: int) -> None:
    x = torch.randn(2, in_chs, size, size)
    y = ZeroPadShortcut(in_chs, in_chs + extra, stride)(x)
    out = -(-size // stride)
    assert y.shape == (2, in_chs + extra, out, out)
    for i in range(out):
        for j in range(out):
            assert torch.equal(y[:, :in_chs, i, j], x[:, :, i * stride, j * stride])
    assert torch.count_nonzero(y[:, in_chs:]) == 0


def test_option_a_has_no_parameters_and_b_c_project() -> None:
    a = make_shortcut("A", 16, 32, stride=2)
    b_change = make_shortcut("B", 16, 32, stride=2)
    b_same = make_shortcut("B", 16, 16, stride=1)
    c_same = make_shortcut("C", 16, 16, stride=1)
    assert count_params(a) == 0 and count_params(b_same) == 0 and isinstance(b_same, nn.Identity)
    assert count_params(b_change) == 16 * 32 + 2 * 32  # 1x1 conv without bias, BN scale and shift
    assert count_params(c_same) == 16 * 16 + 2 * 16
    with pytest.raises(ValueError, match="one of"):
        make_shortcut("D", 16, 32)  # type: ignore[arg-type]


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck])
def test_block_equals_act_of_residual_plus_shortcut(block: type[nn.Module]) -> None:
    """Out = ReLU(F(x) + W_s x) with F the conv-BN stack and W_s the projection (Eq. 2)."""
    blk = randomize_norm_stats(block(32, 16, stride=2, shortcut="B")).eval()
    x = torch.randn(2, 32, 8, 8)
    convs = [blk.conv1, blk.conv2] + ([blk.conv3] if hasattr(blk, "conv3") else [])
    residual = x
    for c in convs:
        residual = c(residual)
    proj = blk.shortcut.bn(F.conv2d(x, blk.shortcut.conv.weight, stride=2))
    torch.testing.assert_close(blk(x), F.relu(residual + proj))


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck, PreActBasicBlock])
def test_plain_block_has_no_shortcut(block: type[nn.Module]) -> None:
    planes = 16 // block.expansion  # 16 channels in and out
    plain = block(16, planes, plain=True)
    assert plain.shortcut is None
    assert not any(isinstance(m, ZeroPadShortcut) for m in plain.modules())
    with torch.no_grad():  # a plain block with its convs zeroed outputs zero: nothing bypasses them
        for m in plain.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.zero_()
        assert torch.count_nonzero(plain.eval()(torch.randn(2, 16, 8, 8))) == 0
    residual = block(16, planes)
    with torch.no_grad():
        for m in residual.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.zero_()
        x = torch.rand(2, 16, 8, 8)  # non-negative: ReLU(0 + x) = x for the post-activation blocks
        torch.testing.assert_close(residual.eval()(x), x)


def test_squeeze_excite_is_a_per_channel_sigmoid_gate() -> None:
    se = SqueezeExcite(32, reduction=4)
    x = torch.randn(2, 32, 5, 7)
    squeezed = x.mean(dim=(2, 3))  # N x C
    w1, b1 = se.fc1.weight.flatten(1), se.fc1.bias
    w2, b2 = se.fc2.weight.flatten(1), se.fc2.bias
    gate = torch.sigmoid(torch.relu(squeezed @ w1.T + b1) @ w2.T + b2)  # N x C
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])
    assert se.fc1.out_channels == 8
    assert count_params(se) == 32 * 8 + 8 + 8 * 32 + 32


def test_se_sits_on_the_residual_branch() -> None:
    blk = Bottleneck(64, 16, attn_layer=partial(SqueezeExcite, reduction=16)).eval()
    assert isinstance(blk.attn, SqueezeExcite) and blk.attn.fc1.in_channels == 64
    with torch.no_grad():
        blk.attn.fc2.bias.fill_(-1e4)  # gate closed: the block reduces to ReLU(shortcut(x))
        x = torch.randn(1, 64, 6, 6)
        torch.testing.assert_close(blk(x), F.relu(x))


def test_bottleneck_weights_against_one_3x3() -> None:
    """The design notes: 256->64->256 bottleneck 69,632 weights against 589,824 for a 3x3 256->256."""
    blk = Bottleneck(256, 64)
    conv_weights = sum(m.weight.numel() for m in blk.modules() if isinstance(m, nn.Conv2d))
    assert conv_weights == 256 * 64 + 64 * 3 * 3 * 64 + 64 * 256 == 69_632
    assert nn.Conv2d(256, 256, 3, bias=False).weight.numel() == 256 * 3 * 3 * 256 == 589_824


@pytest.mark.parametrize(("stride_in", "strides"), [("1x1", (2, 1)), ("3x3", (1, 2))])
def test_bottleneck_stride_placement(stride_in: str, strides: tuple[int, int]) -> None:
    blk = Bottleneck(64, 32, stride=2, stride_in=stride_in)
    assert (blk.conv1.conv.stride[0], blk.conv2.conv.stride[0]) == strides
    assert blk(torch.randn(1, 64, 8, 8)).shape == (1, 128, 4, 4)


def test_resnext_grouped_width() -> None:
    blk = Bottleneck(256, 64, groups=32, base_width=4)
    assert blk.conv2.conv.groups == 32 and blk.conv2.conv.in_channels == 128


def test_preact_blocks_have_nothing_after_the_addition() -> None:
    for blk in (PreActBasicBlock(16, 16), PreActBottleneck(64, 16)):
        blk.eval()
        x = torch.randn(2, blk.in_chs, 6, 6)
        residual = x
        for name in ("conv1", "conv2", "conv3"):
            if hasattr(blk, name):
                residual = getattr(blk, name)(residual)
        torch.testing.assert_close(blk(x), residual + x)  # negative values survive: no final ReLU
        assert isinstance(blk.conv1.bn, nn.BatchNorm2d) and blk.conv1.bn.num_features == blk.in_chs


@settings(max_examples=30, deadline=None)
@given(k=st.sampled_from([1, 3, 5, 7]), d=st.integers(1, 4), size=st.integers(1, 12))
def test_same_padding_keeps_the_size(k: int, d: int, size: int) -> None:
    conv = ConvBnAct(2, 3, k, dilation=d, norm_layer=None, act_layer=None)
    assert conv.conv.padding == same_padding(k, d)
    assert conv(torch.randn(1, 2, size, size)).shape[-2:] == (size, size)


def test_asymmetric_kernels() -> None:
    conv = ConvBnAct(4, 4, (1, 7))
    assert conv.conv.padding == (0, 3)
    assert conv(torch.randn(1, 4, 9, 11)).shape == (1, 4, 9, 11)


def test_basic_block_rejects_groups() -> None:
    with pytest.raises(ValueError, match="bottleneck block"):
        BasicBlock(64, 64, groups=32)


BLOCKS_AND_SHORTCUTS = [
    (BasicBlock, 16, 16, 1, "A"),
    (BasicBlock, 16, 32, 2, "A"),
    (BasicBlock, 16, 32, 2, "B"),
    (Bottleneck, 64, 16, 1, "B"),
    (Bottleneck, 32, 16, 2, "C"),
    (PreActBasicBlock, 16, 16, 1, "B"),
    (PreActBasicBlock, 16, 32, 2, "A"),
    (PreActBottleneck, 64, 16, 1, "B"),
    (PreActBottleneck, 32, 16, 2, "B"),
]


@pytest.mark.parametrize(("block", "in_chs", "planes", "stride", "shortcut"), BLOCKS_AND_SHORTCUTS)
@pytest.mark.parametrize("attn", [False, True])
def test_zero_init_last_starts_each_block_as_its_shortcut(
    block: type[nn.Module], in_chs: int, planes: int, stride: int, shortcut: str, attn: bool
) -> None:
    """timm's zero_init_last: the branch starts at zero, so the block is act(shortcut(x)) in either mode, and the
    zeroed layer still receives a gradient (a pre-activation block zeroes its last conv: the last BN feeds a
    ReLU, whose gradient at 0 is 0)."""
    se = partial(SqueezeExcite, reduction=4) if attn else None
    blk = randomize_norm_stats(block(in_chs, planes, stride=stride, shortcut=shortcut, attn_layer=se))
    blk.zero_init_last()
    x = torch.randn(2, in_chs, 8, 8)
    for mode in (blk.eval, blk.train):
        mode()
        if shortcut == "A":  # option A by hand: subsample, then zero channels
            expected = F.pad(x[:, :, ::stride, ::stride], (0, 0, 0, 0, 0, blk.out_chs - in_chs))
        elif in_chs == blk.out_chs and stride == 1 and shortcut == "B":
            expected = x
        else:  # a projection: conv (+ BN), checked against Eq. 2 above
            with torch.no_grad():
                expected = blk.shortcut(x)
        expected = expected if block.pre_activation else F.relu(expected)
        torch.testing.assert_close(blk(x), expected, rtol=0, atol=0)
    blk.train()
    blk(x).square().sum().backward()
    last = blk.conv3 if hasattr(blk, "conv3") else blk.conv2
    zeroed = last.conv.weight if block.pre_activation else last.bn.weight
    assert torch.count_nonzero(zeroed) == 0 and torch.count_nonzero(zeroed.grad) > 0


def test_zero_init_last_without_norm_zeroes_the_last_conv() -> None:
    blk = BasicBlock(8, 8, norm_layer=None)
    blk.zero_init_last()
    assert torch.count_nonzero(blk.conv2.conv.weight) == 0 and torch.count_nonzero(blk.conv2.conv.bias) == 0
    x = torch.randn(1, 8, 5, 5)
    torch.testing.assert_close(blk(x), F.relu(x), rtol=0, atol=0)


def test_a_one_layer_branch_is_one_conv_bn_added_to_its_shortcut() -> None:
    """He et al. 2016, Sec. 3.1: y = W1 x + x, then the ReLU. By hand in eval mode (the BN's running statistics):
    one conv, one BN, no ReLU before the addition, the identity added."""
    blk = randomize_norm_stats(BasicBlock(6, 6, branch_layers=1)).eval()
    assert sum(isinstance(m, nn.Conv2d) for m in blk.modules()) == 1
    conv, bn = blk.conv1.conv, blk.conv1.bn
    x = torch.randn(2, 6, 7, 7)
    branch = F.batch_norm(
        F.conv2d(x, conv.weight, padding=1), bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps
    )
    assert (branch < 0).any()  # a ReLU inside the branch would change this block's output
    torch.testing.assert_close(blk(x), F.relu(branch + x))
    plain = BasicBlock(6, 6, branch_layers=1, plain=True).eval()
    plain.load_state_dict(blk.state_dict())
    torch.testing.assert_close(plain(x), F.relu(branch))  # the plain twin: conv-BN-ReLU, no shortcut
    blk.zero_init_last()  # the one layer is the last: the block starts as its shortcut
    torch.testing.assert_close(blk(x), F.relu(x), rtol=0, atol=0)
    with pytest.raises(ModelArgumentError, match="branch_layers"):
        BasicBlock(6, 6, branch_layers=3)


def test_a_one_layer_resnet_keeps_the_depth_and_its_plain_twin_is_the_plain_net() -> None:
    """``block_args: {branch_layers: 1}`` puts 3n one-layer blocks in each stage: the same 6n+2 layers and weights,
    and without shortcuts the very net the plain twin of the two-layer ResNet is (its weights, in order, give the
    same outputs)."""
    small = {"widths": (4, 8, 8), "in_chans": 1}
    one = {"block_args": {"branch_layers": 1}}
    resnet1 = create_model("cifar_resnet20", **small, **one)
    assert [len(s) for s in (resnet1.S1, resnet1.S2, resnet1.S3)] == [6, 6, 6]
    assert sum(isinstance(m, nn.Conv2d) for m in resnet1.modules()) == 19  # the stem and 18; with the fc, 20
    assert count_params(resnet1) == count_params(create_model("cifar_resnet20", **small))
    plain, plain1 = create_model("cifar_plain20", **small), create_model("cifar_plain20", **small, **one)
    randomize_norm_stats(plain).eval()
    plain1.eval()
    with torch.no_grad():
        for a, b in zip(plain1.state_dict().values(), plain.state_dict().values(), strict=True):
            a.copy_(b)
    x = torch.randn(2, 1, 12, 12)
    torch.testing.assert_close(plain1(x), plain(x))
