"""Exact parameter counts from ../shared/REFERENCE.md and the papers' structure of the residual family."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.layers import Bottleneck, PreActBottleneck, ZeroPadShortcut
from tests.helpers import count_params

# torchvision 0.29.1 _meta, timm, and He et al. 2015 Table 6 (option A), as listed in REFERENCE.md.
REFERENCE_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "se_resnet50": 28_088_024,
    "cifar_resnet20": 269_722,
    "cifar_resnet32": 464_154,
    "cifar_resnet44": 658_586,
    "cifar_resnet56": 853_018,
    "cifar_resnet110": 1_727_962,
    "cifar_resnet1202": 19_421_274,
}


@pytest.mark.parametrize(("name", "params"), REFERENCE_PARAMS.items())
def test_reference_parameter_counts(name: str, params: int) -> None:
    with torch.device("meta"):
        assert count_params(cnnlab.create_model(name)) == params


def test_cifar_resnet20_option_b() -> None:
    assert count_params(cnnlab.create_model("cifar_resnet20", shortcut="B")) == 272_474


def test_option_c_projects_every_block() -> None:
    """Option C adds a 1x1 conv + BN to all 9 blocks of ResNet-20: the widths give the expected count."""
    model = cnnlab.create_model("cifar_resnet20", shortcut="C")
    projections = [(16, 16)] * 3 + [(16, 32)] + [(32, 32)] * 2 + [(32, 64)] + [(64, 64)] * 2
    assert count_params(model) == 269_722 + sum(i * o + 2 * o for i, o in projections)


def test_plain_twins_have_the_same_weights_except_shortcuts() -> None:
    for depth in (20, 32, 44, 56, 110):
        res = cnnlab.create_model(f"cifar_resnet{depth}")
        plain = cnnlab.create_model(f"cifar_plain{depth}")
        assert count_params(res) == count_params(plain)  # option A shortcuts have no weights
        assert [n for n, _ in res.named_parameters()] == [n for n, _ in plain.named_parameters()]
        assert sum(isinstance(m, ZeroPadShortcut) for m in res.modules()) == 2
        assert all(getattr(m, "shortcut", None) is None for m in plain.modules() if hasattr(m, "conv2"))


def test_cifar_depth_counts_weighted_layers() -> None:
    """6n+2: every conv on the main path plus the fc (option A adds none)."""
    for depth in (20, 56, 110):
        model = cnnlab.create_model(f"cifar_resnet{depth}")
        layers = sum(isinstance(m, nn.Conv2d | nn.Linear) for m in model.modules())
        assert layers == depth


def test_imagenet_resnet_depth_counts_weighted_layers() -> None:
    """18/34/50/101/152: convs and the fc on the main path, projections not counted (Table 1)."""
    for depth in (18, 34, 50, 101, 152):
        with torch.device("meta"):
            model = cnnlab.create_model(f"resnet{depth}")
        shortcut_convs = sum(isinstance(m, nn.Conv2d) for n, m in model.named_modules() if ".shortcut" in n)
        layers = sum(isinstance(m, nn.Conv2d | nn.Linear) for m in model.modules()) - shortcut_convs
        assert layers == depth


def test_cifar_stage_sizes_and_matlab_names() -> None:
    model = cnnlab.create_model("cifar_residual_net", net_width=16, num_units=9)
    assert model.get_submodule("S2.S2U3") is model.S2[2]
    assert [f.module for f in model.feature_info] == ["stem", "S1", "S2", "S3"]
    assert [(f.num_chs, f.reduction) for f in model.feature_info] == [(16, 1), (16, 1), (32, 2), (64, 4)]
    # MATLAB's network: 1x1 projections exactly where the shape changes
    projections = [n for n, m in model.named_modules() if n.endswith("shortcut") and not isinstance(m, nn.Identity)]
    assert projections == ["S2.S2U1.shortcut", "S3.S3U1.shortcut"]
    assert count_params(model) == count_params(cnnlab.create_model("cifar_resnet56", shortcut="B"))


@pytest.mark.parametrize(
    ("kwargs", "reductions", "rates"),
    [
        ({}, [1, 1, 2, 4], [1, 1, 1]),
        ({"stem_stride": 2}, [2, 2, 4, 8], [1, 1, 1]),
        ({"stem_stride": 2, "output_stride": 4}, [2, 2, 4, 4], [1, 1, 2]),  # S3 dilated by 2 instead of strided
        ({"output_stride": 1}, [1, 1, 1, 1], [1, 2, 4]),
        ({"output_stride": 2, "stage_dilations": ((1,) * 3, (1, 2, 3), (1, 2, 5))}, [1, 1, 2, 2], [1, 1, 1]),
    ],
)
def test_cifar_resnet_for_dense_prediction(kwargs: dict, reductions: list[int], rates: list[int]) -> None:
    """A stride-2 stem and an output stride below 4 x stem_stride (dilating S3, then S2) keep the weights:
    ResNet-20's 269,722 whatever the layout; the default dilation is the constant rate that keeps the field."""
    model = cnnlab.create_model("cifar_resnet20", **kwargs)
    assert [f.reduction for f in model.feature_info] == reductions and count_params(model) == 269_722
    assert model.forward_features(torch.randn(1, 3, 64, 64)).shape[-1] == 64 // reductions[-1]
    given = kwargs.get("stage_dilations")
    first = [getattr(model, f"S{j}")[0].conv1.conv.dilation[0] for j in (1, 2, 3)]
    assert first == ([r[0] for r in given] if given else rates)


def test_cifar_resnet_dense_arguments_are_checked() -> None:
    with pytest.raises(cnnlab.ModelArgumentError, match="stem_stride must be 1 or 2, got 3"):
        cnnlab.create_model("cifar_resnet20", stem_stride=3)
    with pytest.raises(cnnlab.ModelArgumentError, match=r"output_stride must be one of \(2, 4, 8\) with stem_stride=2"):
        cnnlab.create_model("cifar_resnet20", stem_stride=2, output_stride=1)
    with pytest.raises(cnnlab.ModelArgumentError, match="3 stages"):
        cnnlab.create_model("cifar_resnet20", stage_dilations=((1,) * 3,))


def test_paper_stride_placement_costs_fewer_macs() -> None:
    """ResNet-50 v1 (stride on the first 1x1) against v1.5 (on the 3x3): same parameters, the paper's 3.8
    GMACs against torchvision's 4.09 (REFERENCE.md), counted here by PyTorch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    def macs(model: nn.Module) -> int:
        with FlopCounterMode(display=False) as counter:
            model(torch.randn(1, 3, 224, 224))
        return counter.get_total_flops() // 2

    with torch.device("meta"):  # FlopCounterMode counts from shapes
        v15 = cnnlab.create_model("resnet50").eval()
        v1 = cnnlab.create_model("resnet50", stride_in="1x1").eval()
    assert count_params(v1) == count_params(v15)
    with torch.no_grad(), torch.device("meta"):
        m15, m1 = macs(v15), macs(v1)
    # the first unit of layer2-4 runs its 1x1 conv1 (C_in -> width) on the stage's input (v1.5) or on the strided
    # map a quarter of its size (v1): C_in * width * H * W * 3/4 fewer MACs each, the same in the three stages
    stages = ((256, 128, 56), (512, 256, 28), (1024, 512, 14))
    saved = sum(c_in * width * side * side * 3 // 4 for c_in, width, side in stages)
    assert round(m15 / 1e9, 3) == 4.089 and m15 - m1 == saved == 231_211_008
    assert round(m1 / 1e9, 2) == 3.86  # the paper: 3.8


def test_se_resnet_follows_the_senet_authors() -> None:
    with torch.device("meta"):
        model = cnnlab.create_model("se_resnet50")
    blk = model.layer2[0]
    assert isinstance(blk, Bottleneck) and blk.conv1.conv.stride == (2, 2) and blk.conv2.conv.stride == (1, 1)
    assert blk.attn.fc1.out_channels == 512 // 16
    assert model.pool.ceil_mode


def test_preact_net_ends_with_norm_and_activation() -> None:
    with torch.device("meta"):
        model = cnnlab.create_model("cifar_preact_resnet164")
    assert isinstance(model.S1[0], PreActBottleneck)
    assert isinstance(model.S3.post_norm[0], nn.BatchNorm2d)
    assert not hasattr(model.stem, "bn")


def _zero_weights(named: dict[str, torch.Tensor]) -> set[str]:
    return {k for k, v in named.items() if k.endswith(".weight") and v.ndim == 1 and torch.count_nonzero(v) == 0}


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_zero_init_last_zeroes_the_norms_torchvision_zeroes(name: str) -> None:
    """cnnlab's zero_init_last and torchvision's zero_init_residual zero the same BN scales (bn2 of a basic block,
    bn3 of a bottleneck), compared through the torchvision key map; both are off by default."""
    torchvision = pytest.importorskip("torchvision")
    from cnnlab.models.resnet import TORCHVISION_KEYS

    theirs = getattr(torchvision.models, name)(zero_init_residual=True).state_dict()
    ours = cnnlab.create_model(name, zero_init_last=True).state_dict()
    expected = {TORCHVISION_KEYS.apply(k) for k in _zero_weights(theirs)}
    assert expected and _zero_weights(ours) == expected
    assert len(expected) == (8 if name == "resnet18" else 16)  # one per block
    assert not _zero_weights(cnnlab.create_model(name).state_dict())


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("cifar_resnet20", {}), ("cifar_resnet20", {"shortcut": "B"}), ("cifar_preact_resnet110", {"layers": (1, 2, 1)})],
)
def test_zero_init_last_makes_each_block_its_shortcut(name: str, kwargs: dict) -> None:
    """With zero_init_last every block's output is act(shortcut(input)) at initialisation, in eval mode too;
    the CIFAR nets keep the paper's init by default (the committed experiments ran with it)."""
    model = cnnlab.create_model(name, zero_init_last=True, **kwargs).eval()
    seen: list[str] = []

    def check(block: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        shortcut = block.shortcut(inputs[0])
        torch.testing.assert_close(output, block.act(shortcut), rtol=0, atol=0)
        seen.append(type(block).__name__)

    blocks = [m for m in model.modules() if hasattr(m, "zero_init_last")]
    for m in blocks:
        m.register_forward_hook(check)
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    assert len(seen) == len(blocks) == sum(kwargs.get("layers", (3, 3, 3)))
    default = cnnlab.create_model(name, **kwargs)
    assert not any(torch.count_nonzero(p) == 0 for n, p in default.named_parameters() if n.endswith("weight"))


def test_zero_init_last_is_refused_for_plain_nets() -> None:
    with pytest.raises(cnnlab.ModelArgumentError, match="plain block"):
        cnnlab.create_model("cifar_plain20", zero_init_last=True)


@pytest.mark.slow
def test_resnet1202_starts_finite_in_eval_mode() -> None:
    """With the paper's init each of the 600 blocks doubles the activations' variance in eval mode (BN at its
    initial statistics) and the output overflows to NaN; cifar_resnet1202 starts each block as its shortcut."""
    torch.manual_seed(0)
    model = cnnlab.create_model("cifar_resnet1202").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert torch.isfinite(out).all()
    assert all(torch.count_nonzero(b.conv2.bn.weight) == 0 for b in model.modules() if hasattr(b, "zero_init_last"))
