"""The pairs of the residual_inception and parallel_kernels experiments, built as their files give them: the
residual Inception net and its twin without shortcuts (Szegedy et al. 2017, Sec. 5) have the same parameters and
MACs and differ only in the addition; the Inception modules with several filter sizes and the one-size control
(Szegedy et al. 2015, Sec. 4) cost the same within 5%, and the costs in each file's header are the analyzer's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.analysis import count_macs
from cnnlab.errors import ModelArgumentError
from cnnlab.experiments.spec import ExperimentSpec, Variant, load_spec
from cnnlab.layers.inception_resnet import BLOCK_A_V1, InceptionResNetBlock
from cnnlab.layers.inception_v1 import GOOGLENET_3A, InceptionV1
from tests.helpers import count_params

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
INPUT = (1, 42, 42)  # mnist5k-rts: one channel, 42x42


def spec(name: str) -> ExperimentSpec:
    return load_spec(EXPERIMENTS / f"{name}.yaml")


def variant(s: ExperimentSpec, label: str) -> Variant:
    return next(v for v in s.variants if v.label == label)


def built(v: Variant, *, meta: bool = True) -> nn.Module:
    """The variant's model as the experiment builds it (plain data through the registry), 10 classes, 1 channel."""
    with torch.device("meta" if meta else "cpu"):
        return cnnlab.build_model(v.model, v.model_kwargs, num_classes=10, in_chans=1)


def cost(v: Variant) -> tuple[int, int]:
    model = built(v)
    return count_params(model), count_macs(model, INPUT)


def header(name: str) -> str:
    """The file's comment lines, joined: where it states its pair's costs."""
    lines = (EXPERIMENTS / f"{name}.yaml").read_text().splitlines()
    return " ".join(line.lstrip("# ") for line in lines if line.startswith("#"))


# ----------------------------------------------------------------------------------------- residual_inception


def test_the_residual_twin_costs_the_same_and_the_header_says_so() -> None:
    s = spec("residual_inception")
    residual, plain = cost(variant(s, "residual")), cost(variant(s, "plain"))
    assert residual == plain  # the additions have no parameters, and the analyzer counts no MACs for them
    params, macs = residual
    assert f"{params:,} parameters and {macs / 1e6:.1f} MMACs each" in header("residual_inception")


def test_only_the_residual_variant_has_shortcuts() -> None:
    s = spec("residual_inception")
    for label, has_shortcut in (("residual", True), ("plain", False)):
        blocks = [m for m in built(variant(s, label)).modules() if isinstance(m, InceptionResNetBlock)]
        assert len(blocks) == 6  # two blocks in each of the three stages
        assert all((b.shortcut is not None) == has_shortcut for b in blocks), label


@pytest.mark.parametrize("plain", [False, True])
def test_a_block_adds_its_input_unless_plain(plain: bool) -> None:
    torch.manual_seed(0)
    block = InceptionResNetBlock(16, BLOCK_A_V1, scale=0.2, plain=plain).eval()
    x = torch.randn(2, 16, 7, 7)
    branch = 0.2 * block.proj(block.branches(x))
    assert torch.equal(block(x), torch.relu(branch if plain else x + branch))
    nn.init.zeros_(block.proj.weight)
    nn.init.zeros_(block.proj.bias)  # no residual left: the block is its shortcut, or nothing
    assert torch.equal(block(x), torch.zeros_like(x) if plain else torch.relu(x))


def test_the_twins_differ_only_in_the_addition() -> None:
    """The same weights load into both; with the same weights they compute different functions."""
    s = spec("residual_inception")
    residual, plain = (built(variant(s, label), meta=False).eval() for label in ("residual", "plain"))
    plain.load_state_dict(residual.state_dict())  # the same keys and shapes: strict
    x = torch.randn(2, *INPUT)
    assert not torch.allclose(residual(x), plain(x))


# ------------------------------------------------------------------------------------------- parallel_kernels


def test_the_one_size_control_costs_the_same_within_5_percent_and_the_header_says_so() -> None:
    s = spec("parallel_kernels")
    (p1, m1), (p2, m2) = cost(variant(s, "several-sizes")), cost(variant(s, "one-size"))
    assert abs(p2 / p1 - 1) < 0.05 and abs(m2 / m1 - 1) < 0.05, (p1, p2, m1, m2)
    text = header("parallel_kernels")
    assert f"{p1:,} params and {m1 / 1e6:.2f} MMACs (several sizes)" in text
    assert f"{p2:,} params ({100 * (p2 / p1 - 1):+.1f}%) and {m2 / 1e6:.2f} MMACs ({100 * (m2 / m1 - 1):+.1f}%)" in text
    features = built(variant(s, "one-size")).num_features
    assert (
        f"the one-size net ends with {features} features, not {built(variant(s, 'several-sizes')).num_features}" in text
    )


def kernel_sizes(module: nn.Module) -> set[int]:
    return {m.kernel_size[0] for m in module.modules() if isinstance(m, nn.Conv2d)}


def test_the_one_size_modules_filter_at_3x3_only() -> None:
    s = spec("parallel_kernels")
    several, one = (
        [m for m in built(variant(s, label)).modules() if isinstance(m, InceptionV1)]
        for label in ("several-sizes", "one-size")
    )
    assert len(several) == len(one) == 6
    assert all(kernel_sizes(m) == {1, 3, 5} for m in several)
    for m in one:  # the branches' filters: 3x3; the only 1x1s are the reductions before them
        assert kernel_sizes(m.branch1x1) == kernel_sizes(m.branch_pool) == {3}
        for branch in (m.branch3x3, m.branch5x5):
            assert [layer.conv.kernel_size for layer in branch] == [(1, 1), (3, 3)]
        assert not any(isinstance(layer, nn.MaxPool2d) for layer in m.modules())


def test_one_size_keeps_the_module_widths() -> None:
    one, several = InceptionV1(48, GOOGLENET_3A, kernel_size=3), InceptionV1(48, GOOGLENET_3A)
    x = torch.randn(1, 48, 9, 9)
    assert one(x).shape == several(x).shape == (1, GOOGLENET_3A.out_chs, 9, 9)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: InceptionV1(48, GOOGLENET_3A, naive=True, kernel_size=3), "naive"),
        (lambda: cnnlab.create_model("googlenet_small", stage_width_mults=(0.7, 0.6)), "stage_width_mults"),
        (lambda: cnnlab.create_model("googlenet_small", stage_width_mults=(0.7, 0.6, 0.0)), "stage_width_mults"),
    ],
)
def test_what_the_one_size_control_refuses(build: object, match: str) -> None:
    with pytest.raises(ModelArgumentError, match=match):
        build()  # type: ignore[operator]
