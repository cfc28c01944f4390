"""Gridding maps of dilated stacks and the effective receptive field, against independent enumerations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.analysis.erf import effective_receptive_field
from cnnlab.analysis.gridding import gridding_map
from cnnlab.errors import ModelArgumentError
from cnnlab.layers.dilated import hdc_check


def reachable_offsets(rates: list[int], k: int = 3) -> set[int]:
    """Offsets (one axis) that some path through the stack reaches: sums of r_i * t_i, |t_i| <= (k-1)/2."""
    taps = range(-(k // 2), k // 2 + 1)
    return {sum(r * t for r, t in zip(rates, ts, strict=True)) for ts in itertools.product(taps, repeat=len(rates))}


@pytest.mark.parametrize("rates", [[2, 2, 2], [1, 2, 5], [1, 2, 9], [2, 4, 8], [1, 2, 3]])
def test_gridding_map_matches_enumeration(rates: list[int]) -> None:
    grid = gridding_map(rates)
    assert grid.field == 1 + 2 * sum(rates)
    offsets = reachable_offsets(rates)
    half = grid.field // 2
    expected = np.array(
        [[dy in offsets and dx in offsets for dx in range(-half, half + 1)] for dy in range(-half, half + 1)]
    )
    assert np.array_equal(grid.window > 0, expected)
    assert grid.holes == int((~expected).sum())


def test_hdc_examples_holes() -> None:
    assert gridding_map([1, 2, 5]).holes == 0  # Wang et al.: [1, 2, 5] covers its 17x17 field
    g = gridding_map([2, 2, 2])
    assert g.holes == 13 * 13 - 7 * 7  # only even offsets are reached
    assert g.text().splitlines()[6].split()[6] == "o"
    assert g.text().splitlines()[1] == " ".join(["."] * 13)


def test_hdc_verdicts_come_with_the_map() -> None:
    ok, holes = gridding_map([1, 2, 5]), gridding_map([2, 2, 2])
    assert "DilatedConvStack" in ok.layers
    assert ok.verdicts == str(hdc_check([1, 2, 5])) and holes.verdicts == str(hdc_check([2, 2, 2]))
    assert holes.holes == 120


def test_bad_rates_are_a_clear_error() -> None:
    with pytest.raises(ModelArgumentError, match="integers >= 1, got \\[0, 2\\]"):
        gridding_map([0, 2])


def test_erf_support_is_the_theoretical_field() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))  # field 5
    erf = effective_receptive_field(net, (2, 15, 15), samples=4)
    assert erf.grad.shape == (15, 15) and erf.grad.max() == pytest.approx(1.0)
    assert erf.theoretical == (5, 5)
    support = erf.grad > 0
    assert support[5:10, 5:10].all() and support.sum() == 25  # exactly the 5x5 window around the centre
    assert erf.mass_within(5) == pytest.approx(1.0) and erf.effective_side(1.0) == 5


def test_erf_of_a_model_uses_its_last_feature_map() -> None:
    import cnnlab

    model = cnnlab.create_model("cifar_resnet20")
    erf = effective_receptive_field(model, (3, 32, 32), samples=2)
    assert erf.theoretical == (81, 81) and erf.grad.shape == (32, 32)
    assert erf.grad[16, 16] > 0 and model.training  # the mode is restored
