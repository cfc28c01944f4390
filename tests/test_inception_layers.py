"""The Inception building blocks, each checked on its own against a formula or F.conv2d / F.max_pool2d."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.layers import (
    BN_INCEPTION_WIDTHS,
    GOOGLENET_3A,
    BNInception,
    Concat,
    ConvBnAct,
    GridReduction,
    InceptionV1,
    InceptionV1Widths,
    InceptionV3A,
    InceptionV3B,
    InceptionV3C,
    InceptionV4A,
    InceptionV4B,
    InceptionV4C,
    asymmetric,
    conv_chain,
    expanded_asymmetric,
    stacked_3x3,
)
from cnnlab.layers.inception_resnet import BLOCK_A_V2, InceptionResNetBlock
from cnnlab.layers.inception_v4 import reduction_a, reduction_b
from tests.helpers import count_params

LINEAR_CONV = partial(ConvBnAct, norm_layer=None, act_layer=None, bias=False)
"""A bare conv, so that a stack of them is one linear map."""


def test_widths_are_named_after_table_1() -> None:
    assert InceptionV1Widths(c1x1=64, c3x3_reduce=96, c3x3=128, c5x5_reduce=16, c5x5=32, pool_proj=32) == GOOGLENET_3A
    assert GOOGLENET_3A.out_chs == 256
    with pytest.raises(AttributeError):
        GOOGLENET_3A.c1x1 = 1  # type: ignore[misc]


def test_naive_module_passes_the_input_through_its_pool() -> None:
    """Fig. 2a: the pool branch has no projection, so its output is the max-pooled input itself."""
    w = InceptionV1Widths(2, 0, 3, 0, 4, 0)
    block = InceptionV1(5, w, naive=True).eval()
    x = torch.randn(1, 5, 8, 8)
    with torch.no_grad():
        out = block(x)
    assert block.out_chs == out.shape[1] == 2 + 3 + 4 + 5
    torch.testing.assert_close(out[:, -5:], F.max_pool2d(x, 3, stride=1, padding=1))
    assert block.branch5x5.conv.kernel_size == (5, 5)
    assert InceptionV1(5, w, naive=True, kernel_5x5=3).branch5x5.conv.kernel_size == (3, 3)


def test_reduced_module_branch_order_and_weights() -> None:
    block = InceptionV1(192, GOOGLENET_3A, conv_layer=LINEAR_CONV)
    assert list(dict(block.named_children())) == ["branch1x1", "branch3x3", "branch5x5", "branch_pool"]
    w = GOOGLENET_3A
    weights = 192 * w.c1x1 + 192 * w.c3x3_reduce + w.c3x3_reduce * w.c3x3 * 9
    weights += 192 * w.c5x5_reduce + w.c5x5_reduce * w.c5x5 * 25 + 192 * w.pool_proj
    assert count_params(block) == weights


def test_concat_joins_branches_in_order() -> None:
    a, b = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 4, 3, padding=1)
    cat = Concat(3, a=a, b=b)
    assert cat.out_chs == 6  # derived from the branches
    x = torch.randn(1, 3, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(cat(x), torch.cat([a(x), b(x)], dim=1))


def test_conv_chain_pads_same_at_stride_1_and_valid_at_stride_2() -> None:
    chain = conv_chain(8, [(4, 1), (6, 3), (5, 3, 2)])
    assert chain(torch.randn(1, 8, 35, 35)).shape == (1, 5, 17, 17)
    single = conv_chain(8, [(4, (1, 7))])
    assert isinstance(single, ConvBnAct) and single.conv.padding == (0, 3)


def receptive_field(module: nn.Module, channels: int = 1, size: int = 15) -> tuple[int, int]:
    """Height and width of the input region that the centre output depends on."""
    x = torch.randn(1, channels, size, size, requires_grad=True)
    module(x)[0, :, size // 2, size // 2].sum().backward()
    rows, cols = x.grad.abs().sum(dim=(0, 1)).nonzero(as_tuple=True)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize("n", [5, 7])
def test_stacked_3x3_covers_n_by_n_with_fewer_weights(n: int) -> None:
    """Sec. 3.1: (n-1)/2 stacked 3x3 see an n x n field; for C -> C, 9(n-1)/2 against n^2 weights per pair."""
    torch.manual_seed(0)
    stack = stacked_3x3(4, 4, n, conv_layer=LINEAR_CONV)
    assert len(stack) == (n - 1) // 2
    assert receptive_field(stack, channels=4) == (n, n)
    assert count_params(stack) == 9 * (n - 1) // 2 * 4 * 4
    assert count_params(stack) / (n * n * 4 * 4) == pytest.approx({5: 18 / 25, 7: 27 / 49}[n])


def test_asymmetric_pair_is_a_rank_one_n_by_n_conv() -> None:
    """Sec. 3.2: a 1 x n conv then an n x 1 conv (single channel, no non-linearity) is the n x n conv whose
    kernel is the outer product of the two; 2n weights instead of n^2."""
    pair = asymmetric(1, 1, 7, conv_layer=LINEAR_CONV)
    row, col = pair[0].conv.weight.view(7), pair[1].conv.weight.view(7)
    kernel = torch.outer(col, row).view(1, 1, 7, 7)
    x = torch.randn(1, 1, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(pair(x), F.conv2d(x, kernel, padding=3), rtol=1e-5, atol=1e-5)
    assert count_params(pair) == 2 * 7
    transposed = asymmetric(1, 1, 3, transpose=True)
    assert [m.conv.kernel_size for m in transposed] == [(3, 1), (1, 3)]
    with pytest.raises(cnnlab.ModelArgumentError, match="odd n"):
        asymmetric(1, 1, 4)


def test_expanded_filter_bank_runs_the_pair_side_by_side() -> None:
    bank = expanded_asymmetric(6, 4, 3, conv_layer=LINEAR_CONV)
    x = torch.randn(1, 6, 8, 8)
    with torch.no_grad():
        out = bank(x)
        torch.testing.assert_close(out, torch.cat([bank.a(x), bank.b(x)], dim=1))
    assert out.shape == (1, 8, 8, 8) and bank.out_chs == 8
    assert bank.a.conv.kernel_size == (1, 3) and bank.b.conv.kernel_size == (3, 1)


def test_grid_reduction_halves_the_grid_and_keeps_the_pooled_input() -> None:
    """Fig. 10: stride-2 convs and a stride-2 pool in parallel; the pool branch is the max-pooled input."""
    block = GridReduction(8, {"branch3x3": [(12, 3, 2)], "branch3x3dbl": [(4, 1), (6, 3), (6, 3, 2)]}).eval()
    x = torch.randn(1, 8, 35, 35)
    with torch.no_grad():
        out = block(x)
    assert out.shape == (1, 12 + 6 + 8, 17, 17) and block.out_chs == 26
    torch.testing.assert_close(out[:, -8:], F.max_pool2d(x, 3, stride=2))
    first = GridReduction(8, {"conv": [(4, 3, 2)]}, pool_name="maxpool", pool_first=True)
    assert list(dict(first.named_children())) == ["maxpool", "conv"]


@pytest.mark.parametrize(
    ("block", "in_chs", "out_chs"),
    [
        (partial(InceptionV3A, pool_features=32), 192, 256),
        (partial(InceptionV3B, c7=128), 768, 768),
        (InceptionV3C, 1280, 2048),
        (InceptionV4A, 384, 384),
        (InceptionV4B, 1024, 1024),
        (InceptionV4C, 1536, 1536),
    ],
)
def test_inception_modules_keep_the_grid(block: type[nn.Module], in_chs: int, out_chs: int) -> None:
    module = block(in_chs).eval()
    with torch.no_grad():
        assert module(torch.randn(1, in_chs, 5, 5)).shape == (1, out_chs, 5, 5) and module.out_chs == out_chs


def test_v4_reductions_widths_of_table_1() -> None:
    """Reduction-A with (k, l, m, n) = (192, 224, 256, 384): 384 + n + m channels; Reduction-B: 1024 + 192 + 320."""
    red_a = reduction_a(384, k=192, l=224, m=256, n=384)
    red_b = reduction_b(1024)
    with torch.no_grad():
        assert red_a.eval()(torch.randn(1, 384, 9, 9)).shape == (1, 384 + 384 + 256, 4, 4)
        assert red_b.eval()(torch.randn(1, 1024, 9, 9)).shape == (1, 1024 + 192 + 320, 4, 4)


def test_inception_resnet_scales_the_residual_before_the_addition() -> None:
    """out = act(x + scale * proj(branches(x))): without the activation, out - x is linear in the scale."""
    torch.manual_seed(0)
    branches = [[(4, 1)], [(4, 1), (6, 3)]]
    block = InceptionResNetBlock(8, branches, scale=0.2, act_layer=None).eval()
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        residual = block.proj(block.branches(x))
        torch.testing.assert_close(block(x), x + 0.2 * residual)
        block.scale = 0.0
        torch.testing.assert_close(block(x), x)
    relu_block = InceptionResNetBlock(32, BLOCK_A_V2, scale=0.0).eval()
    with torch.no_grad():
        torch.testing.assert_close(relu_block(x.repeat(1, 4, 1, 1)), torch.relu(x.repeat(1, 4, 1, 1)))
    assert relu_block.proj.bias is not None and relu_block.branches.out_chs == 32 + 32 + 64


def test_bn_inception_module_double_3x3_and_stride_2_on_any_grid() -> None:
    """Figure 5's module: the 5x5 field as 1x1 then two 3x3 (the "double 3x3" branch); a stride-2 module has no
    1x1 branch, passes its pooled input through and halves odd and even grids alike."""
    module = BNInception(192, BN_INCEPTION_WIDTHS["3a"])
    convs = [c for c in module.branch3x3dbl.modules() if isinstance(c, nn.Conv2d)]
    dbl = [(c.in_channels, c.out_channels, c.kernel_size) for c in convs]
    assert dbl == [(192, 64, (1, 1)), (64, 96, (3, 3)), (96, 96, (3, 3))]
    assert module(torch.randn(1, 192, 9, 9)).shape == (1, 256, 9, 9)
    reduction = BNInception(320, BN_INCEPTION_WIDTHS["3c"])
    assert not hasattr(reduction, "branch1x1") and isinstance(reduction.branch_pool, nn.MaxPool2d)
    for s in (14, 15):
        assert reduction(torch.randn(1, 320, s, s)).shape == (1, 160 + 96 + 320, (s + 1) // 2, (s + 1) // 2)


V1 = ["branch1x1", "branch3x3", "branch5x5", "branch_pool"]
V3 = ["branch1x1", "branch3x3", "branch3x3dbl", "branch_pool"]  # also BN-Inception's
V4 = ["branch0", "branch1", "branch2", "branch3"]


@pytest.mark.parametrize(
    ("make", "in_chs", "order"),
    [
        (partial(InceptionV1, widths=GOOGLENET_3A), 192, V1),
        (partial(InceptionV1, widths=GOOGLENET_3A, naive=True), 8, V1),
        (partial(InceptionV3A, pool_features=32), 192, ["branch1x1", "branch5x5", "branch3x3dbl", "branch_pool"]),
        (partial(InceptionV3B, c7=128), 768, ["branch1x1", "branch7x7", "branch7x7dbl", "branch_pool"]),
        (InceptionV3C, 1280, V3),
        (InceptionV4A, 384, V4),
        (InceptionV4B, 1024, V4),
        (InceptionV4C, 1536, V4),
        (partial(BNInception, widths=BN_INCEPTION_WIDTHS["3a"]), 192, V3),
        (partial(BNInception, widths=BN_INCEPTION_WIDTHS["3c"]), 320, V3[1:]),  # no 1x1 at stride 2
        (partial(reduction_a, k=8, l=8, m=8, n=8), 16, V4[:3]),
        (partial(GridReduction, convs={"c": [(4, 3, 2)]}, pool_name="maxpool", pool_first=True), 8, ["maxpool", "c"]),
        (partial(Concat, a=nn.Conv2d(3, 2, 1), b=nn.MaxPool2d(3, 1, 1)), 3, ["a", "b"]),
    ],
)  # fmt: skip
def test_multi_branch_blocks_concatenate_their_named_branches(make: partial, in_chs: int, order: list[str]) -> None:
    """Each block's output is its branches' outputs concatenated in the paper's (or released model's) order, and
    a module attached to the block later does not join the output (the children are not iterated)."""
    block = make(in_chs).eval()
    x = torch.randn(1, in_chs, 9, 9)
    with torch.no_grad():
        expected = torch.cat([getattr(block, name)(x) for name in order], dim=1)
        block.extra = nn.Conv2d(in_chs, 5, 1)
        out = block(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert out.shape[1] == block.out_chs
