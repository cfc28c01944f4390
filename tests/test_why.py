"""Pictures of why: Grad-CAM against the hand-computed weighted sum of activations and on a trained net's
evidence, and the sampling points of a deformable stack against the regular grid, a known shift and the layer's
own sampling."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.analysis.cam import gradcam, overlay
from cnnlab.analysis.sampling import deformable_layers, sampling_points
from cnnlab.errors import ModelArgumentError
from cnnlab.layers.deformable import DeformConv2d


class HandNet(nn.Module):
    """features (a fixed 1x1 conv and ReLU: A) -> head: y_c = sum_k v_ck * m_k^2 with m_k the spatial mean of A^k,
    so that dy_c / dA^k_ij = 2 v_ck m_k / (h w) by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU())
        with torch.no_grad():
            self.features[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]]).view(3, 2, 1, 1))
            self.features[0].bias.zero_()
        self.v = nn.Parameter(torch.tensor([[1.0, -2.0, 0.5], [-1.0, 3.0, 2.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.features(x).mean(dim=(2, 3))
        return (m**2) @ self.v.T


def test_gradcam_is_the_weighted_sum_of_activations_with_relu() -> None:
    torch.manual_seed(0)
    net, x = HandNet(), torch.randn(2, 2, 4, 5)
    cam = gradcam(net, x, target=1, layer="features")
    a = F.relu(torch.einsum("kc,nchw->nkhw", torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]]), x))
    m = a.mean(dim=(2, 3))
    alpha = 2 * net.v[1].detach() * m / 20  # the spatial mean of dy/dA over 4 x 5 positions
    expected = F.relu((alpha[:, :, None, None] * a).sum(1))
    torch.testing.assert_close(cam.weights, alpha)
    torch.testing.assert_close(cam.maps, expected)
    assert cam.target.tolist() == [1, 1] and cam.layer == "features"
    up = cam.upsampled((8, 10))
    assert up.shape == (2, 8, 10) and float(up.amax()) == pytest.approx(1.0) and float(up.amin()) >= 0


def blobs(n: int, *, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """Noise images 1 x 24 x 24; class 1 holds a bright 5x5 square at a random place, class 0 does not."""
    x = torch.rand(n, 1, 24, 24, generator=gen) * 0.3
    y = torch.arange(n) % 2
    where = []
    for i in range(n):
        r, c = (int(v) for v in torch.randint(0, 19, (2,), generator=gen))
        where.append((r, c))
        if y[i]:
            x[i, :, r : r + 5, c : c + 5] = 1.0
    return x, y, where


def test_gradcam_of_a_trained_net_peaks_on_the_evidence() -> None:
    """A small conv net trained to tell a bright square from noise: its Grad-CAM for "square" peaks on it."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(60):
        x, y, _ = blobs(32, gen=gen)
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    x, y, where = blobs(16, gen=gen)
    assert (net(x).argmax(1) == y).float().mean() >= 0.9  # it learnt the task
    squares = torch.nonzero(y).flatten()
    cam = gradcam(net, x[squares], target=1, layer="3").upsampled((24, 24))
    for k, i in enumerate(squares.tolist()):
        r, c = where[i]
        peak = int(cam[k].flatten().argmax())
        assert r - 1 <= peak // 24 <= r + 5 and c - 1 <= peak % 24 <= c + 5, (where[i], divmod(peak, 24))


def test_gradcam_of_a_registered_model_takes_its_last_stage() -> None:
    model = cnnlab.create_model("cifar_resnet20", num_classes=10)
    x = torch.randn(3, 3, 32, 32)
    cam = gradcam(model, x)
    assert cam.layer == "S3" and cam.maps.shape == (3, 8, 8) and cam.weights.shape == (3, 64)
    assert model.training  # explained in eval mode, handed back in the mode it came in
    with torch.no_grad():
        probs = model.eval()(x).softmax(1)
    assert torch.equal(cam.target, probs.argmax(1))  # the predicted class by default
    torch.testing.assert_close(cam.probs, probs.amax(1))
    with pytest.raises(ModelArgumentError, match="no layer 'S4'"):
        gradcam(model, torch.randn(1, 3, 32, 32), layer="S4")
    with pytest.raises(ModelArgumentError, match=r"one in 0\.\.9"):
        gradcam(model, torch.randn(1, 3, 32, 32), target=10)
    picture = overlay(torch.zeros(4, 4, dtype=torch.uint8).numpy(), torch.ones(4, 4).numpy(), alpha=0.5)
    assert picture.shape == (4, 4, 3) and picture.dtype.name == "uint8" and picture.any()


class DeformStack(nn.Module):
    """A 3x3 stem at stride 2, then three deformable 3x3s (the last at stride 2), as Dai et al. stack them in a
    network's last stage."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.d1 = DeformConv2d(4, 4, 3)
        self.d2 = DeformConv2d(4, 4, 3, dilation=2, padding=2)
        self.d3 = DeformConv2d(4, 4, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.d3(self.d2(self.d1(self.stem(x))))


def regular(unit: tuple[int, int]) -> list[tuple[float, float]]:
    """By hand, the 729 points of unit (i, j) of d3 with zero offsets, in the stem's output grid, then the image's:
    d3 samples 2i - 1 + a; d2 samples that + 2b - 2; d1 that + c - 1 (a, b, c in 0..2); the stem's output pixel
    q is the image's pixel 2q + 0.5 (pixel centres at stride 2)."""
    i, j = unit
    points = []
    for (a, b, c), (e, f, g) in itertools.product(itertools.product(range(3), repeat=3), repeat=2):
        row = 2 * i - 1 + a + 2 * b - 2 + c - 1
        col = 2 * j - 1 + e + 2 * f - 2 + g - 1
        points.append((2 * row + 0.5, 2 * col + 0.5))
    return points


def rows(points: torch.Tensor) -> list[tuple[float, ...]]:
    """Points as sorted (y, x) pairs rounded to 1e-4: the same multiset whatever the order."""
    return sorted(tuple(round(v, 4) for v in p) for p in points.tolist())


def test_zero_offsets_sample_the_regular_grid() -> None:
    net = DeformStack()
    s = sampling_points(net, torch.randn(1, 1, 32, 32), cell=(3, 4))
    assert s.layers == ["d1", "d2", "d3"] == deformable_layers(net) and s.grid == (8, 8)
    assert [len(level) for level in s.levels] == [9, 81, 729]
    assert rows(s.levels[-1]) == rows(torch.tensor(regular((3, 4))))
    torch.testing.assert_close(s.unit, torch.tensor([2 * (2 * 3) + 0.5, 2 * (2 * 4) + 0.5]))  # d3's centre


def test_a_constant_offset_shifts_every_level() -> None:
    """Each layer's offsets (dy, dx) = (0.5, -1) everywhere: the 729 points move by 3 * (0.5, -1) on the stem's
    grid, twice that on the image."""
    net = DeformStack()
    with torch.no_grad():
        for d in (net.d1, net.d2, net.d3):
            d.offset.bias.copy_(torch.tensor([0.5, -1.0] * 9))
    x = torch.randn(1, 1, 32, 32)
    shifted = sampling_points(net, x, cell=(2, 5)).levels[-1]
    expected = torch.tensor(regular((2, 5))) + torch.tensor([2 * 3 * 0.5, 2 * 3 * -1.0])
    assert rows(shifted) == rows(expected)


def test_the_top_layers_points_are_where_it_samples() -> None:
    """With random offsets, the top layer's output at the unit is its weights times its input read bilinearly at
    the 9 points found (on its own input grid: a stack of one layer on an image of its input's size)."""
    torch.manual_seed(0)
    layer = DeformConv2d(2, 3, 3, bias=False)
    with torch.no_grad():
        layer.offset.weight.normal_(0, 0.5)
    x = torch.randn(1, 2, 9, 9)
    s = sampling_points(nn.Sequential(layer), x, cell=(4, 2))
    pts = s.levels[0]
    grid = torch.stack([(2 * pts[:, 1] + 1) / 9 - 1, (2 * pts[:, 0] + 1) / 9 - 1], 1).view(1, 1, 9, 2)
    read = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0, :, 0]  # 2 x 9
    with torch.no_grad():
        expected = torch.einsum("okp,kp->o", layer.weight.view(3, 2, 9), read)
        torch.testing.assert_close(layer(x)[0, :, 4, 2], expected, atol=1e-5, rtol=1e-5)


def test_the_strongest_unit_by_default_and_errors() -> None:
    net = DeformStack()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        out = net(x)[0].norm(dim=0)
    s = sampling_points(net, x)
    assert divmod(int(out.flatten().argmax()), 8) == s.cell
    assert len(sampling_points(net, x, depth=2).levels[-1]) == 81
    with pytest.raises(ModelArgumentError, match="no deformable convs"):
        sampling_points(cnnlab.create_model("cifar_resnet20"), torch.randn(1, 3, 32, 32))
    with pytest.raises(ModelArgumentError, match="cell must lie"):
        sampling_points(net, x, cell=(8, 0))
