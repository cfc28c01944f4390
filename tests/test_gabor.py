"""The fixed Gabor first layer (Serre et al. 2007, the S1 layer): the paper's parameters, the formula evaluated by
hand, rotation by the orientation, the layer as a stem of ``cifar_vgg``, and ``cnnlab filters``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.analysis.filters import first_conv, kernels
from cnnlab.analysis.plots import plot_filters
from cnnlab.cli import main
from cnnlab.errors import ModelArgumentError
from cnnlab.layers import GaborConv2d, gabor_bank
from cnnlab.layers.gabor import gabor_kernel, s1_filter, serre_sigma, serre_wavelength
from cnnlab.layers.named import plain_model_kwargs, resolve_model_kwargs
from cnnlab.train.predict import model_from_checkpoint
from tests.train_fixtures import write_mnist

# Serre et al. 2007, Table 1 (S1 layer): filter size -> (sigma, lambda), to one decimal place
SERRE_TABLE_1 = {7: (2.8, 3.5), 9: (3.6, 4.6), 11: (4.5, 5.6), 13: (5.4, 6.8), 15: (6.3, 7.9), 37: (18.2, 22.8)}


@pytest.mark.parametrize(("size", "sigma_lambda"), SERRE_TABLE_1.items())
def test_sigma_and_lambda_are_the_papers_table_1(size: int, sigma_lambda: tuple[float, float]) -> None:
    assert (round(serre_sigma(size), 1), round(serre_wavelength(size), 1)) == sigma_lambda


def by_hand(x: float, y: float, theta: float, sigma: float, lam: float, gamma: float = 0.3) -> float:
    """The paper's F(x, y), written out."""
    x0 = x * math.cos(theta) + y * math.sin(theta)
    y0 = -x * math.sin(theta) + y * math.cos(theta)
    return math.exp(-(x0 * x0 + gamma * gamma * y0 * y0) / (2 * sigma * sigma)) * math.cos(2 * math.pi * x0 / lam)


@pytest.mark.parametrize("theta", [0.0, math.pi / 4, math.pi / 3])
def test_a_filter_is_the_gabor_formula_at_each_point(theta: float) -> None:
    size, sigma, lam = 7, 2.8, 3.5
    k = gabor_kernel(size, theta, sigma=sigma, wavelength=lam)
    for row, col in [(3, 3), (3, 4), (4, 3), (1, 5), (0, 0), (6, 2)]:  # (3, 3) is the centre: F = 1
        x, y = col - 3, row - 3  # x to the right, y down
        assert k[row, col].item() == pytest.approx(by_hand(x, y, theta, sigma, lam), rel=1e-12)
    assert k[3, 3].item() == 1.0


def test_the_s1_filter_is_the_formula_on_its_disc_with_zero_mean_and_unit_norm() -> None:
    size, theta = 9, math.pi / 4
    s1 = s1_filter(size, theta)
    sigma, lam = serre_sigma(size), serre_wavelength(size)
    raw = [[by_hand(c - 4, r - 4, theta, sigma, lam) for c in range(9)] for r in range(9)]
    inside = [(r, c) for r in range(9) for c in range(9) if (r - 4) ** 2 + (c - 4) ** 2 <= 4.5**2]
    assert all(s1[r, c] == 0 for r in range(9) for c in range(9) if (r, c) not in inside)  # the corners
    assert len(inside) == 69  # lattice points within radius 4.5 of the centre
    assert s1.sum().item() == pytest.approx(0, abs=1e-12)
    assert s1.norm().item() == pytest.approx(1)
    # an affine image of the formula on the disc: (F - mean) / norm, the same scale for every pair of points
    (r0, c0), (r1, c1) = (4, 4), (4, 6)
    scale = (s1[r0, c0] - s1[r1, c1]).item() / (raw[r0][c0] - raw[r1][c1])
    for (ra, ca), (rb, cb) in [((2, 3), (5, 7)), ((0, 4), (8, 4)), ((1, 2), (6, 6))]:
        assert (s1[ra, ca] - s1[rb, cb]).item() == pytest.approx(scale * (raw[ra][ca] - raw[rb][cb]), rel=1e-9)


def test_turning_the_orientation_by_90_degrees_rotates_the_filter() -> None:
    bank = gabor_bank((5, 7, 9, 11), 4)  # per size: 0, 45, 90, 135 degrees
    for s in range(4):
        f0, f45, f90, f135 = bank[4 * s : 4 * s + 4]
        assert torch.allclose(torch.rot90(f0), f90, atol=1e-12)
        assert torch.allclose(torch.rot90(f45), f135, atol=1e-12)
        assert not torch.allclose(f0, f90)
        # the 45-degree stripes run along the anti-diagonals (x + y = const), so it is its own transpose
        assert torch.allclose(f45, f45.T, atol=1e-12) and not torch.allclose(f45, f45.flip(0), atol=1e-3)


def test_the_bank_centres_each_size_in_the_largest_kernel() -> None:
    bank = gabor_bank((5, 11), 2)
    assert bank.shape == (4, 11, 11)
    assert torch.equal(bank[0, 3:8, 3:8], s1_filter(5, 0.0)) and bank[0].abs().sum() == bank[0, 3:8, 3:8].abs().sum()
    assert torch.equal(bank[3], s1_filter(11, math.pi / 2))


def test_the_layer_is_fixed_and_filters_the_channel_mean() -> None:
    layer = GaborConv2d(3)
    assert list(layer.parameters()) == [] and "weight" in layer.state_dict()
    x = torch.randn(2, 3, 28, 28, requires_grad=True)
    out = layer(x)
    assert out.shape == (2, 16, 28, 28)
    expected = F.conv2d(x.mean(1, keepdim=True), gabor_bank()[:, None].float(), padding=5)
    assert torch.allclose(out, expected, atol=1e-5)
    out.sum().backward()  # gradients reach the input, and there is nothing in the layer to train
    assert x.grad is not None and layer.weight.grad is None
    assert GaborConv2d(1, stride=2)(torch.randn(1, 1, 28, 28)).shape == (1, 16, 14, 14)


def test_bad_arguments_say_what_would_be_right() -> None:
    with pytest.raises(ModelArgumentError, match="4 sizes x 4 orientations make 16 filters, but 32"):
        GaborConv2d(1, 32)
    with pytest.raises(ModelArgumentError, match="odd pixel counts"):
        GaborConv2d(1, sizes=(4, 7))


def test_cifar_vgg_with_a_gabor_stem() -> None:
    learned = cnnlab.build_model("cifar_vgg", in_chans=1)
    gabor = cnnlab.build_model("cifar_vgg", {"stem_layer": "gabor"}, in_chans=1)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(learned) == 72_666 and n(gabor) == 72_666 - 16 * 9  # the learned 3x3 conv's 144 weights are gone
    assert first_conv(learned)[1].weight.shape == (16, 1, 3, 3)
    path, conv = first_conv(gabor)
    assert path == "stage1.0.conv" and torch.equal(conv.weight[:, 0], gabor_bank().float())
    report = cnnlab.analyze(gabor, (1, 28, 28))
    stem = report.layer("stage1.0.conv.conv2d")
    assert stem.macs == 28 * 28 * 16 * 11 * 11 and stem.rf == (11, 11)
    # three stages of (3x3, 3x3, 2x2 pool) after an 11x11: 11 + 2, + 1; + 2 * 4, + 2; + 4 * 4, + 4 (36 with a 3x3)
    assert report.receptive_field == (44, 44) and report.depth == 7
    # a training step leaves the bank as it was
    opt = torch.optim.SGD(gabor.parameters(), lr=0.1)
    F.cross_entropy(gabor(torch.randn(4, 1, 28, 28)), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    assert torch.equal(gabor.stage1[0].conv.weight[:, 0], gabor_bank().float())
    # named as plain data both ways, with options
    small = {"stem_layer": {"name": "gabor", "sizes": [5, 7], "orientations": 2}}
    assert plain_model_kwargs(resolve_model_kwargs(small)) == small


def drawn(png: Path) -> bool:
    """A PNG that decodes to a picture with many shades (not a blank)."""
    from PIL import Image

    with Image.open(png) as image:
        return image.size[0] > 400 and len(np.unique(np.asarray(image.convert("L")))) > 20


def test_filters_shows_the_first_conv_beside_the_gabor_bank(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_mnist(tmp_path / "data")
    stem = {"stem_layer": {"name": "gabor", "sizes": [5, 7], "orientations": 2}}
    kwargs = json.dumps({"stages": [[4], [8]], **stem})
    assert main(["train", "--model", "cifar_vgg", "--model-kwargs", kwargs, "--data", "mnist", "--data-dir",
                 str(tmp_path / "data"), "--epochs", "1", "--batch-size", "64", "--no-progress", "--out-dir",
                 str(tmp_path / "runs"), "--run-name", "gabor"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["filters", str(tmp_path / "runs" / "gabor"), "--out", str(tmp_path / "gabor.png")]) == 0
    out = capsys.readouterr().out
    best = tmp_path / "runs" / "gabor" / "best.pt"
    assert f"({best}): first conv stage1.0.conv, 4 filters of 1 x 7 x 7" in out
    assert "fixed Gabor bank" in out and drawn(tmp_path / "gabor.png")
    model, _ = model_from_checkpoint(tmp_path / "runs" / "gabor")
    assert torch.equal(first_conv(model)[1].weight[:, 0], gabor_bank((5, 7), 2).float())
    learned = first_conv(cnnlab.build_model("cifar_vgg", in_chans=3))[1]
    plot_filters(kernels(learned), gabor_bank().numpy(), tmp_path / "learned.png")  # RGB tiles
    assert drawn(tmp_path / "learned.png")
    assert main(["filters", str(tmp_path / "nothing")]) == 2
    assert "no checkpoint or run folder" in capsys.readouterr().err
