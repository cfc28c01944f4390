"""The models that the claims experiments train: the small VGG (3x3 pairs against 5x5, GAP against FC head),
MobileNet v1 with full convolutions (Howard et al. 2017, Table 4), DenseNet-BC of any depth 6n + 4 (Huang et al.
2017) and AlexNet as the paper built it (Krizhevsky et al. 2012). Counts come from hand formulas, not from the
code."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.analysis import analyze, count_macs
from cnnlab.layers import ConvBnAct, local_response_norm
from cnnlab.models.mobilenet import V1_STAGES
from tests.helpers import count_params


def meta_model(name: str, **kwargs: object) -> cnnlab.CnnlabModel:
    with torch.device("meta"):
        return cnnlab.create_model(name, **kwargs)


def conv_weights(pairs: list[tuple[int, int]], k: int, *, bn: bool, groups: int = 1) -> int:
    """k x k convs in -> out; with BN no bias and a weight and shift per channel, without BN a bias."""
    return sum(k * k * a // groups * b + (2 * b if bn else b) for a, b in pairs)


def linear(a: int, b: int) -> int:
    return a * b + b


# ------------------------------------------------------------------------------------------------- cifar_vgg

VGG_3X3 = [(3, 16), (16, 16), (16, 32), (32, 32), (32, 64), (64, 64)]  # the default pairs of 3x3 convs
VGG_5X5 = [(3, 16), (16, 32), (32, 64)]  # one 5x5 per pair, to the pair's output width


def test_cifar_vgg_counts_by_hand() -> None:
    """Defaults, one 5x5 per pair of 3x3, the FC head (fc6, fc7 of 256 on the 4x4-pooled map) and no BN."""
    gap = linear(64, 10)
    fc_head = linear(64 * 4 * 4, 256) + linear(256, 256) + linear(256, 10)
    assert count_params(meta_model("cifar_vgg")) == conv_weights(VGG_3X3, 3, bn=True) + gap == 72_954
    assert count_params(meta_model("cifar_vgg", kernel_size=5)) == conv_weights(VGG_5X5, 5, bn=True) + gap == 66_074
    fc = meta_model("cifar_vgg", head="fc")
    assert count_params(fc) == conv_weights(VGG_3X3, 3, bn=True) + fc_head == 403_066
    assert count_params(fc.head) == fc_head and fc_head > 4 * count_params(fc) // 5  # the FC head: most of it
    with torch.device("meta"):  # norm_layer: null as plain data, as a config writes it: the convs get biases
        plain = cnnlab.build_model("cifar_vgg", {"norm_layer": None, "act_layer": "relu"})
    assert count_params(plain) == conv_weights(VGG_3X3, 3, bn=False) + gap
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())


def test_cifar_vgg_5x5_keeps_the_receptive_field_with_half_the_convs() -> None:
    three, five = cnnlab.create_model("cifar_vgg"), cnnlab.create_model("cifar_vgg", kernel_size=5)
    convs = [[m.kernel_size for m in net.modules() if isinstance(m, nn.Conv2d)] for net in (three, five)]
    assert convs == [[(3, 3)] * 6, [(5, 5)] * 3]
    # per stage: two 3x3 (or one 5x5) widen the field by 4 input jumps, the 2x2 pool by 1: 6, 16, 36
    assert analyze(three, (3, 42, 42)).receptive_field == analyze(five, (3, 42, 42)).receptive_field == (36, 36)


@pytest.mark.parametrize("head", ["gap", "fc"])
def test_cifar_vgg_takes_the_embedded_sizes(head: str) -> None:
    model = cnnlab.create_model("cifar_vgg", in_chans=1, head=head, drop_rate=0.5).eval()
    with torch.no_grad():
        for s in (28, 42, 60):
            assert model(torch.randn(2, 1, s, s)).shape == (2, 10)
            assert model.forward_features(torch.randn(1, 1, s, s)).shape == (1, 64, s // 8, s // 8)
    with pytest.raises(cnnlab.InputShapeError, match="H, W >= 8"):
        model(torch.randn(1, 1, 7, 7))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kernel_size": 5, "stages": ((16, 16), (32, 32, 32))}, "even number of convs; stage 2 has 3"),
        ({"kernel_size": 7}, "kernel_size must be 3 or 5"),
        ({"head": "avg"}, "head must be one of 'gap', 'fc'"),
        ({"stages": ()}, "at least one stage"),
        ({"stages": ((16, 0),)}, "out_chs must be an integer >= 1"),
    ],
)
def test_cifar_vgg_refuses_what_it_cannot_build(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(cnnlab.ModelArgumentError, match=match):
        cnnlab.create_model("cifar_vgg", **kwargs)


# ------------------------------------------------------------------------------------- MobileNet v1, full convs


def test_mobilenet_v1_full_convolutions_match_table_4() -> None:
    """Each separable layer as a full 3x3 conv-BN-ReLU of the same widths and stride: 29.3M params and 4866M
    mult-adds in Table 4 (ours 29,294,088 and 4,867M); the separable net stays at 4,231,976 (4.2M, 569M)."""
    widths = [32] + [c for stage in V1_STAGES for c, _ in stage]
    full = conv_weights([(3, 32), *itertools.pairwise(widths)], 3, bn=True) + linear(1024, 1000)
    with torch.device("meta"):
        model = cnnlab.build_model("mobilenet_v1", {"block_layer": "conv_bn_act"})
        separable = cnnlab.build_model("mobilenet_v1", {"block_layer": "depthwise_separable"})
    assert count_params(model) == full == 29_294_088 and round(full / 1e6, 1) == 29.3
    assert count_params(meta_model("mobilenet_v1", block_layer=ConvBnAct)) == full
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 14  # the stem and 13 full convs
    assert round(count_macs(model) / 1e9, 2) == 4.87
    assert count_params(separable) == 4_231_976 and round(count_macs(separable) / 1e9, 3) == 0.569


def test_mobilenet_v1_stem_stride_1_for_small_inputs() -> None:
    model = cnnlab.create_model("mobilenet_v1", stem_stride=1, in_chans=1, num_classes=10).eval()
    assert [f.reduction for f in model.feature_info] == [1, 1, 2, 4, 8, 16]
    assert count_params(model) == count_params(cnnlab.create_model("mobilenet_v1", in_chans=1, num_classes=10))
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 1, 42, 42)).shape == (1, 1024, 3, 3)
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(cnnlab.ModelArgumentError, match="stem_stride must be 1 or 2, got 4"):
        cnnlab.create_model("mobilenet_v1", stem_stride=4)


# ------------------------------------------------------------------------------------------------ DenseNet-BC


def densenet_bc_params(depth: int, k: int, classes: int = 10) -> int:
    """Huang et al. Sec. 3-4 by hand: a bias-free 3x3 conv to 2k; per layer BN-ReLU-1x1 to 4k, BN-ReLU-3x3 to k;
    transitions BN-ReLU-1x1 to half the channels; the final BN; the fc."""
    n, total, c = (depth - 4) // 6, 3 * 9 * 2 * k, 2 * k
    for block in range(3):
        for _ in range(n):
            total += 2 * c + c * 4 * k + 2 * 4 * k + 9 * 4 * k * k
            c += k
        if block < 2:
            total += 2 * c + c * (c // 2)
            c //= 2
    return total + 2 * c + linear(c, classes)


@pytest.mark.parametrize(("depth", "k"), [(40, 12), (64, 12), (100, 12)])
def test_densenet_bc_depths(depth: int, k: int) -> None:
    model = meta_model("densenet_bc", depth=depth, growth_rate=k)
    assert count_params(model) == densenet_bc_params(depth, k)
    n = (depth - 4) // 6
    c1 = 2 * k + n * k
    assert [f.num_chs for f in model.feature_info] == [2 * k, c1, c1 // 2 + n * k, (c1 // 2 + n * k) // 2 + n * k]
    assert model.stem.conv.out_channels == 2 * k and model.stage1.block.layer1.conv1.conv.out_channels == 4 * k
    assert model.stage2.transition.out_chs == c1 // 2  # compression 0.5
    assert sum(isinstance(m, nn.Conv2d | nn.Linear) for m in model.modules()) == depth


def test_densenet_bc_counts_known_elsewhere() -> None:
    """The formula is the reference's at L=100 (769,162); the paper's Table 2 gives 15.3M for L=250, k=24."""
    assert densenet_bc_params(100, 12) == 769_162 == count_params(meta_model("densenet_bc_100_12"))
    assert round(count_params(meta_model("densenet_bc", depth=250, growth_rate=24)) / 1e6, 1) == 15.3


@pytest.mark.parametrize("depth", [50, 4, 101])
def test_densenet_bc_refuses_other_depths(depth: int) -> None:
    with pytest.raises(cnnlab.ModelArgumentError, match=rf"6n \+ 4 .* got depth={depth}"):
        cnnlab.create_model("densenet_bc", depth=depth)


# ------------------------------------------------------------------------------------------------ AlexNet, 2012


def test_alexnet_paper_count_and_towers() -> None:
    """Caffe's bvlc_alexnet count: conv2, conv4, conv5 read only their tower's half of the maps."""
    convs = [(3, 96, 11, 1), (96, 256, 5, 2), (256, 384, 3, 1), (384, 384, 3, 2), (384, 256, 3, 2)]
    fcs = linear(256 * 6 * 6, 4096) + linear(4096, 4096) + linear(4096, 1000)
    by_hand = sum(conv_weights([(a, b)], k, bn=False, groups=g) for a, b, k, g in convs) + fcs
    one_tower = sum(conv_weights([(a, b)], k, bn=False) for a, b, k, _ in convs) + fcs
    model = meta_model("alexnet_paper")
    assert count_params(model) == by_hand == 60_965_224
    assert count_params(meta_model("alexnet_paper", groups=1)) == one_tower == 62_378_344
    groups = {n.rsplit(".", 2)[-2]: m.groups for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    assert groups == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    assert model.stage1.conv1.conv.padding == (0, 0) and model.stage1.conv1.conv.stride == (4, 4)
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride) for p in pools] == [(3, 2)] * 3  # overlapping pooling, Sec. 3.4
    assert model.default_input_size == (3, 227, 227)
    x = torch.empty(2, 3, 227, 227, device="meta")
    assert model.stage1.conv1(x).shape == (2, 96, 55, 55)  # Fig. 2's first map
    assert model.forward_features(x).shape == (2, 256, 6, 6) and model.eval()(x).shape == (2, 1000)


def test_alexnet_paper_normalises_after_the_first_two_relus() -> None:
    model = meta_model("alexnet_paper")
    lrns = [n for n, m in model.named_modules() if isinstance(m, nn.LocalResponseNorm)]
    assert lrns == ["stage1.norm1", "stage2.norm2"]
    assert list(model.stage1) == [model.stage1.conv1, model.stage1.norm1, model.stage1.pool1]
    assert isinstance(model.stage1.conv1[-1], nn.ReLU)
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in meta_model("alexnet_paper", lrn=False).modules())


def test_local_response_norm_is_the_papers_formula() -> None:
    """b_i = a_i / (k + alpha * sum of a_j^2 over the n channels around i) ** beta, with the paper's alpha (torch's
    own divides alpha by n)."""
    a = torch.rand(2, 7, 3, 3) * 20
    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75
    expected = torch.stack(
        [a[:, i] / (k + alpha * a[:, max(0, i - n // 2) : i + n // 2 + 1].square().sum(1)) ** beta for i in range(7)],
        dim=1,
    )
    torch.testing.assert_close(local_response_norm()(a), expected)
    assert not torch.allclose(nn.LocalResponseNorm(n, alpha, beta, k)(a), expected)  # torch's alpha is not it
