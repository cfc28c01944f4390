"""Where a deformable network looks: the sampling locations of one output unit, followed back through its stack
of deformable convolutions to the image.

Dai et al. 2017, "Deformable Convolutional Networks", Sec. 4.2, Fig. 5 and 7: a unit of the top deformable 3x3
samples its input at 9 points, its grid position plus a learned offset each; each of those points is itself a unit
of the deformable layer below, which samples 9 points, and so on: 9^L points for L layers (729 for the three of
Fig. 5), drawn on the image, adapt to the object where a regular grid would not.

Coordinates are pixel centres: output unit (i, j) of a layer with stride s, padding p and dilation d samples its
input at ``(i*s - p + ki*d + dy, j*s - p + kj*d + dx)`` (:func:`~cnnlab.layers.deformable.sampled_columns`). A point
that falls between units of the layer below takes that layer's offsets interpolated bilinearly; between layers at
different resolutions (a map the layers between them resized) the scale is the ratio of the sizes. Modulation
(v2) is not drawn; the offset group is the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError
from cnnlab.layers.deformable import DeformConv2d
from cnnlab.plotting import pyplot, save_figure


@dataclass(frozen=True)
class Sampling:
    """The sampling points of one unit of the top deformable layer, in the image's pixel coordinates (y, x)."""

    unit: Tensor  # 2: the unit's position, its kernel centre followed down to the image
    levels: list[Tensor]  # level k (1..L): 9^k x 2 points, those of the k deformable layers from the top
    layers: list[str]  # the deformable layers followed, bottom to top
    grid: tuple[int, int]  # the top layer's output size, where the unit was chosen
    cell: tuple[int, int]  # the unit (row, column) in that grid


@dataclass
class _Seen:
    """One call of a deformable layer: its geometry, input and output sizes and the offsets it computed."""

    name: str
    layer: DeformConv2d
    in_size: tuple[int, int]
    out: Tensor  # 1 x C' x H' x W'
    offset: Tensor  # 1 x 2*G*kh*kw x H' x W'


def deformable_layers(model: nn.Module) -> list[str]:
    """The names of the model's deformable convs (:class:`~cnnlab.layers.deformable.DeformConv2d`)."""
    return [name for name, m in model.named_modules() if isinstance(m, DeformConv2d)]


@torch.no_grad()
def sampling_points(
    model: nn.Module, x: Tensor, *, cell: tuple[int, int] | None = None, depth: int | None = None
) -> Sampling:
    """The sampling points of unit ``cell`` of the last deformable layer that ``model`` runs on the image ``x``
    (1 x C x H x W), followed back through ``depth`` deformable layers (default: all of them).

    ``cell`` defaults to the unit whose output is strongest (the largest norm over its channels), where the
    network responds most, as Fig. 7 shows units on the objects.
    """
    if x.ndim != 4 or len(x) != 1:
        raise ModelArgumentError(f"sampling_points takes one image, 1 x C x H x W; got shape {tuple(x.shape)}")
    seen = _run(model, x)
    if depth is not None and not 1 <= depth <= len(seen):
        raise ModelArgumentError(f"depth must be in 1..{len(seen)} (the model's deformable layers), got {depth}")
    chain = seen[-(depth or len(seen)) :]
    top = chain[-1]
    grid = (top.out.shape[-2], top.out.shape[-1])
    if cell is None:
        flat = int(top.out[0].norm(dim=0).flatten().argmax())
        cell = (flat // grid[1], flat % grid[1])
    if not (0 <= cell[0] < grid[0] and 0 <= cell[1] < grid[1]):
        raise ModelArgumentError(f"cell must lie in the top deformable layer's {grid[0]}x{grid[1]} output, got {cell}")
    top_k = len(chain) - 1
    points = torch.tensor([[float(cell[0]), float(cell[1])]])  # in the top layer's output coordinates
    unit = _down(chain, top_k, _samples(top, points, centre_only=True))
    levels = []
    for k in range(top_k, -1, -1):  # from the top layer down
        points = _samples(chain[k], points)  # in chain[k]'s input coordinates
        levels.append(_down(chain, k, points))
        if k > 0:  # the same points as units of the layer below
            points = _rescale(points, chain[k].in_size, chain[k - 1].out.shape[-2:])
    image = (x.shape[-2], x.shape[-1])
    return Sampling(
        unit=_rescale(unit, chain[0].in_size, image)[0],
        levels=[_rescale(level, chain[0].in_size, image) for level in levels],
        layers=[s.name for s in chain],
        grid=grid,
        cell=cell,
    )


def _run(model: nn.Module, x: Tensor) -> list[_Seen]:
    """Run the model once in eval mode and record every deformable layer's call, in the order they ran."""
    seen: list[_Seen] = []
    names = {m: n for n, m in model.named_modules()}

    def record(layer: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        inp = args[0]
        seen.append(_Seen(names[layer], layer, (inp.shape[-2], inp.shape[-1]), out, layer.offset(inp)))

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, DeformConv2d)]
    if not hooks:
        raise ModelArgumentError(f"{getattr(model, 'model_name', type(model).__name__)} has no deformable convs")
    was_training = model.training
    try:
        model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return seen


def _kernel(layer: DeformConv2d) -> Tensor:
    """The kernel points' regular offsets (kh*kw x 2), row-major as the offset channels are."""
    kh, kw = layer.weight.shape[-2:]
    dy, dx = layer.dilation
    rows = torch.arange(kh).repeat_interleave(kw) * dy
    cols = torch.arange(kw).repeat(kh) * dx
    return torch.stack([rows, cols], 1).float()


def _samples(seen: _Seen, points: Tensor, *, centre_only: bool = False) -> Tensor:
    """Where the units at ``points`` (P x 2, the layer's output coordinates) sample the layer's input: P*kh*kw x 2
    (the kernel points with their offsets), or P x 2 for the kernel centre without offsets."""
    layer = seen.layer
    corner = points * torch.tensor(layer.stride, dtype=torch.float) - torch.tensor(layer.padding, dtype=torch.float)
    kernel = _kernel(layer)
    if centre_only:
        return corner + kernel.mean(0)
    points_k = len(kernel)
    offsets = _bilinear(seen.offset[0, : 2 * points_k], points).view(len(points), points_k, 2)  # (dy, dx) pairs
    return (corner[:, None, :] + kernel[None] + offsets).reshape(-1, 2)


def _bilinear(field: Tensor, points: Tensor) -> Tensor:
    """``field`` (C x H x W) at the continuous positions ``points`` (P x 2, rows and columns): P x C; positions
    outside the map take the nearest border value."""
    h, w = field.shape[-2:]
    gy = (2 * points[:, 0] + 1) / h - 1
    gx = (2 * points[:, 1] + 1) / w - 1
    grid = torch.stack([gx, gy], 1).view(1, 1, -1, 2).to(field.dtype)
    out = F.grid_sample(field[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, 0].T


def _rescale(points: Tensor, size: Any, target: Any) -> Tensor:
    """Pixel-centre coordinates on a map of ``size`` as coordinates on a map of ``target`` (the same image)."""
    scale = torch.tensor([target[0] / size[0], target[1] / size[1]], dtype=torch.float)
    return (points + 0.5) * scale - 0.5


def _down(chain: list[_Seen], k: int, points: Tensor) -> Tensor:
    """Points in ``chain[k]``'s input coordinates followed down to ``chain[0]``'s input through the kernel centres
    of the layers below (where they sample without their offsets: for drawing the upper levels)."""
    for j in range(k - 1, -1, -1):
        points = _rescale(points, chain[j + 1].in_size, chain[j].out.shape[-2:])
        points = _samples(chain[j], points, centre_only=True)
    return points


def draw_sampling(image: np.ndarray, sampling: Sampling, path: Any, *, title: str = "") -> Any:
    """``image`` (H x W x 3 or H x W uint8) with the deepest level's sampling points (red) and the unit (green),
    as in Dai et al.'s Fig. 5 and 7, saved as a PNG at ``path``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 4.3))
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    deepest = sampling.levels[-1].numpy()
    ax.scatter(deepest[:, 1], deepest[:, 0], s=9, c="red", edgecolors="white", linewidths=0.3,
               label=f"{len(deepest)} points")  # fmt: skip
    ax.scatter([float(sampling.unit[1])], [float(sampling.unit[0])], s=60, c="lime", edgecolors="black", label="unit")
    h, w = image.shape[:2]
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_axis_off()
    ax.legend(loc="lower right", fontsize=7, framealpha=0.7)
    ax.set_title(title or f"{len(sampling.layers)} deformable layers, unit {sampling.cell}", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
