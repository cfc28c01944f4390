"""Harder digits built from the embedded MNIST-5k, deterministically and in about a second, nothing downloaded.

* :func:`rts` — "RTS" MNIST (Jaderberg et al. 2015, Spatial Transformer Networks, Sec. 4.1): each digit rotated
  by an angle drawn from U(-45°, 45°), scaled by U(0.7, 1.2), and placed at a random position of a 42x42 canvas
  where its 20x20 content box (MNIST centres every digit's ink in 20x20 of its 28x28) stays whole.
* :func:`cluttered` — cluttered translated MNIST (Mnih et al. 2014, Recurrent Models of Visual Attention,
  Sec. 4.1): each digit at a random position of a 60x60 canvas, with four 8x8 fragments cut at random from other
  digits and placed at random positions (the paper's 60x60 setting; it used 8 on its 100x100 canvas). Pixels
  combine by their maximum. Fragments come from the same side of the test split as the digit, so no test digit's
  ink appears in a training image (fragments of validation digits may appear in training images: the
  validation split chooses epochs, it is not the held-out estimate).

Both draw every random number from ``numpy.random.default_rng(SEED)`` in a fixed order, so the same 5,000
images come out on every machine; the splits are mnist5k's (the same digits in train, validation and test).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

RTS_SEED, CLUTTER_SEED = 1015, 2014  # the papers' years: any fixed seed would do, these are documented
RTS_CANVAS, RTS_ANGLE, RTS_SCALE = 42, 45.0, (0.7, 1.2)  # Jaderberg et al. 2015
CLUTTER_CANVAS, CLUTTER_PIECES, CLUTTER_SIZE = 60, 4, 8  # Mnih et al. 2014
CONTENT = 20  # MNIST's digits are size-normalised into 20x20 and centred in 28x28 (LeCun et al. 1998)


def rts(x: Tensor, *, seed: int | Sequence[int] = RTS_SEED, canvas: int = RTS_CANVAS) -> Tensor:
    """``x`` (N x 1 x 28 x 28 uint8) rotated, scaled and translated onto ``canvas`` x ``canvas`` (uint8)."""
    n, _, h, w = x.shape
    rng = np.random.default_rng(seed)
    angle = np.deg2rad(rng.uniform(-RTS_ANGLE, RTS_ANGLE, n))
    scale = rng.uniform(*RTS_SCALE, n)
    half = CONTENT / 2 * scale * (np.abs(np.cos(angle)) + np.abs(np.sin(angle)))  # half-width of the turned box
    cx, cy = (rng.uniform(half, canvas - half) for _ in range(2))
    # canvas pixel centres, relative to where the digit's centre lands: N x canvas x canvas
    ys, xs = torch.meshgrid(torch.arange(canvas) + 0.5, torch.arange(canvas) + 0.5, indexing="ij")
    dx = xs[None] - torch.as_tensor(cx, dtype=torch.float32)[:, None, None]
    dy = ys[None] - torch.as_tensor(cy, dtype=torch.float32)[:, None, None]
    cos, sin = (torch.as_tensor(f(angle), dtype=torch.float32)[:, None, None] for f in (np.cos, np.sin))
    s = torch.as_tensor(scale, dtype=torch.float32)[:, None, None]
    # the source pixel of each canvas pixel: rotate back by the angle, divide by the scale
    src_x, src_y = (cos * dx + sin * dy) / s + w / 2, (-sin * dx + cos * dy) / s + h / 2
    grid = torch.stack([src_x / w * 2 - 1, src_y / h * 2 - 1], dim=-1)  # grid_sample's [-1, 1] coordinates
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def cluttered(
    x: Tensor,
    *,
    seed: int | Sequence[int] = CLUTTER_SEED,
    canvas: int = CLUTTER_CANVAS,
    pieces: int = CLUTTER_PIECES,
    size: int = CLUTTER_SIZE,
) -> Tensor:
    """``x`` (N x 1 x 28 x 28 uint8) placed on ``canvas`` x ``canvas`` with ``pieces`` fragments of other digits of
    ``x`` (uint8)."""
    n, _, h, w = x.shape
    if n < 2:
        raise ValueError("clutter is cut from other digits: give at least two")
    rng = np.random.default_rng(seed)
    src = x.numpy()[:, 0]
    out = np.zeros((n, canvas, canvas), dtype=np.uint8)
    for i in range(n):
        for _ in range(pieces):
            j = (i + rng.integers(1, n)) % n  # any digit but this one
            a, b = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
            r, c = rng.integers(0, canvas - size + 1, 2)
            np.maximum(out[i, r : r + size, c : c + size], src[j, a : a + size, b : b + size],
                       out=out[i, r : r + size, c : c + size])  # fmt: skip
        r, c = rng.integers(0, canvas - h + 1), rng.integers(0, canvas - w + 1)
        np.maximum(out[i, r : r + h, c : c + w], src[i], out=out[i, r : r + h, c : c + w])
    return torch.from_numpy(out)[:, None]
