"""Augmentation, fitting images to a network's input size, and normalisation.

Tensor data sets (digits, CIFAR) are augmented batch by batch (He et al. 2016, Sec. 4.2 for CIFAR: pad 4, random
32x32 crop, horizontal flip; a 2-pixel shift for digits), with randomness that is a function of (seed, rank,
epoch, step) only, so a resumed run sees the same batches as an uninterrupted one. Image folders use
torchvision's ImageNet-style transforms per image.

:class:`InputPipeline` says how a test image becomes the network's input (native size, fitted size and how,
statistics); the trainer stores it in every checkpoint, and evaluation, prediction and export rebuild the same
input from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cnnlab.data.stats import ChannelStats
from cnnlab.errors import DataError

FitMode = Literal["native", "pad", "resize"]
Kind = Literal["tensor", "folder"]


@dataclass(frozen=True)
class AugmentSpec:
    """A data set's standard training augmentation."""

    pad: int = 0  # random crop after zero padding by this many pixels (0: none)
    flip: bool = False  # random horizontal flip (never for digits)
    rotate: float = 0.0  # random rotation by up to this many degrees either way (tensor data; 0: none)
    scale: float = 0.0  # random scaling by a factor in [1 - scale, 1 + scale] (tensor data; 0: none)

    @property
    def affine(self) -> bool:
        """Whether it rotates or scales (:func:`random_affine`), which only in-memory classification data does."""
        return bool(self.rotate or self.scale)

    @property
    def active(self) -> bool:
        return bool(self.pad or self.flip or self.affine)


def step_generator(seed: int, rank: int, epoch: int, step: int) -> torch.Generator:
    """A generator seeded by (seed, rank, epoch, step) alone: the randomness of one batch."""
    mixed = int(np.random.SeedSequence([seed, rank, epoch, step]).generate_state(1)[0])
    return torch.Generator().manual_seed(mixed)


def random_crop_flip(x: Tensor, *, pad: int, flip: bool, gen: torch.Generator) -> Tensor:
    """Each image of ``x`` (N x C x H x W) zero-padded by ``pad``, cropped back at a random offset, and
    mirrored with probability 1/2: torchvision's RandomCrop(padding) + RandomHorizontalFlip on a whole batch."""
    return joint_crop_flip([x], [0], pad=pad, flip=flip, gen=gen)[0]


def joint_crop_flip(
    tensors: Sequence[Tensor], fills: Sequence[float], *, pad: int, flip: bool, gen: torch.Generator
) -> list[Tensor]:
    """:func:`random_crop_flip` with the same offsets and mirrors for every tensor of ``tensors`` (N x C x H x W
    images, N x H x W masks), ``tensors[k]`` padded with ``fills[k]``: an image and its label map stay aligned
    (a mask is padded with the ignore index, so that the border it gains counts nowhere). Moving whole pixels,
    it needs no interpolation, so labels stay labels."""
    n, h, w = len(tensors[0]), *tensors[0].shape[-2:]
    out = list(tensors)
    if pad:
        dy, dx = (torch.randint(0, 2 * pad + 1, (n,), generator=gen) for _ in range(2))
        rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # N x 1 x H x 1
        cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # N x 1 x 1 x W
        for k, (t, fill) in enumerate(zip(tensors, fills, strict=True)):
            t4 = t if t.ndim == 4 else t[:, None]  # a mask as N x 1 x H x W
            padded = F.pad(t4, (pad, pad, pad, pad), value=fill)
            channels = torch.arange(t4.shape[1])[None, :, None, None]
            crop = padded[torch.arange(n)[:, None, None, None], channels, rows, cols]
            out[k] = crop if t.ndim == 4 else crop[:, 0]
    if flip:
        mirror = torch.rand(n, generator=gen) < 0.5
        out = [torch.where(mirror.view(-1, *[1] * (t.ndim - 1)), t.flip(-1), t) for t in out]
    return out


def affine_batch(x: Tensor, degrees: Tensor, factors: Tensor) -> Tensor:
    """Image ``i`` of ``x`` (N x C x H x W) rotated about its centre by ``degrees[i]`` (counter-clockwise as
    displayed, rows downwards) and scaled by ``factors[i]`` (2: twice as large), bilinear, zero where it samples
    outside the image; ``x``'s dtype kept (integer images rounded)."""
    n = len(x)
    angle = torch.deg2rad(degrees.to(torch.float32))
    inverse = 1 / factors.to(torch.float32)  # the grid maps output pixels to the input ones they sample
    cos, sin = torch.cos(angle) * inverse, torch.sin(angle) * inverse
    zero = torch.zeros(n)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out if x.is_floating_point() else out.round().clamp(0, torch.iinfo(x.dtype).max).to(x.dtype)


def random_affine(x: Tensor, *, rotate: float, scale: float, gen: torch.Generator) -> Tensor:
    """Each image of ``x`` rotated by an angle uniform in [-rotate, rotate] degrees and scaled by a factor uniform in
    [1 - scale, 1 + scale] (:func:`affine_batch`): torchvision's ``RandomAffine(rotate, scale=(1 - scale,
    1 + scale))`` on a whole batch, with the randomness of ``gen``. The classic digit augmentation beyond shifts
    (Simard et al. 2003, Sec. 2; Ciresan et al. 2012: rotations of up to 15 degrees and scalings of up to 15%)."""
    n = len(x)
    degrees = (torch.rand(n, generator=gen) * 2 - 1) * rotate
    factors = 1 + (torch.rand(n, generator=gen) * 2 - 1) * scale
    return affine_batch(x, degrees, factors)


@dataclass(frozen=True)
class InputPipeline:
    """How an image of a data set becomes a network input: plain data, stored in checkpoints.

    ``native_size`` is the data set's image size; ``size`` the network's input. ``fit`` is how one becomes the
    other: ``"pad"`` centres the image on a zero (background) canvas, as LeNet-5 took MNIST's 28x28 digits in a
    32x32 field (LeCun et al. 1998, Sec. II.B); ``"resize"`` resamples (bilinear, antialiased). Image folders
    (``kind="folder"``) are resized by 8/7 and centre-cropped to ``size`` at test time, as on ImageNet.
    """

    kind: Kind
    in_chans: int
    native_size: int
    size: int
    fit: FitMode
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def plan(
        cls,
        *,
        kind: Kind,
        in_chans: int,
        native_size: int | None,
        stats: ChannelStats,
        min_size: int,
        default_size: int,
        size: int | None = None,
    ) -> InputPipeline:
        """The pipeline for a model that takes inputs of at least ``min_size`` (``default_size`` in its paper).

        Tensor data keep their native size unless ``size`` asks for another (then they are resized), and are
        padded up to ``min_size`` when smaller than it. Image files are read at ``size``, else ``default_size``.
        """
        if size is not None and size < min_size:
            raise DataError(f"image size {size} is below the model's minimum input size {min_size}")
        if kind == "folder" or native_size is None:
            size = size or max(default_size, min_size)
            return cls("folder", in_chans, size, size, "native", tuple(stats.mean), tuple(stats.std))
        fit: FitMode = "native"
        if size is not None and size != native_size:
            fit = "resize"
        elif native_size < min_size:
            fit, size = "pad", min_size
        return cls(kind, in_chans, native_size, size or native_size, fit, tuple(stats.mean), tuple(stats.std))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputPipeline:
        return cls(**{**d, "mean": tuple(d["mean"]), "std": tuple(d["std"])})

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    def fit_batch(self, x: Tensor) -> Tensor:
        """A batch at the native size (N x C x H x W, uint8 or float in the raw range) fitted to ``size``."""
        return self._fit(x, fill=0, labels=False)

    def fit_masks(self, m: Tensor, *, fill: int) -> Tensor:
        """Label maps (N x H x W) fitted as :meth:`fit_batch` fits their images: padded with ``fill`` (the ignore
        index; 0 for a size map), or resized by the nearest pixel (a label is never blended with another)."""
        return self._fit(m[:, None], fill=fill, labels=True)[:, 0]

    def _fit(self, x: Tensor, *, fill: int, labels: bool) -> Tensor:
        if self.fit == "pad":
            h, w = x.shape[-2:]
            top, left = (self.size - h) // 2, (self.size - w) // 2
            return F.pad(x, (left, self.size - w - left, top, self.size - h - top), value=fill)
        if self.fit == "resize":
            if labels:
                return F.interpolate(x.float(), size=(self.size, self.size), mode="nearest").to(x.dtype)
            return F.interpolate(x.float(), size=(self.size, self.size), mode="bilinear", antialias=True)
        return x

    def normalize(self, x: Tensor) -> Tensor:
        """uint8 (0-255) images to normalised floats."""
        mean = torch.tensor(self.mean).view(1, -1, 1, 1) * 255
        std = torch.tensor(self.std).view(1, -1, 1, 1) * 255
        return (x.float() - mean) / std

    def denormalize(self, x: Tensor) -> Tensor:
        """Normalised network inputs back to uint8 images (0-255), as they are shown."""
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return ((x.float() * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)

    def folder_transforms(self, *, train: bool) -> Any:
        """torchvision transforms of one image file: ImageNet's random-resized crops and flips for training;
        resize by 8/7 and centre crop for evaluation."""
        from torchvision import transforms as T

        norm = T.Normalize(self.mean, self.std)
        if train:
            return T.Compose([T.RandomResizedCrop(self.size), T.RandomHorizontalFlip(), T.ToTensor(), norm])
        return T.Compose([T.Resize(self.size * 8 // 7), T.CenterCrop(self.size), T.ToTensor(), norm])

    def image_transforms(self, *, dense: bool = False) -> Any:
        """torchvision transforms that turn one image file into the network input, as at test time; ``dense``
        (segmentation): image files resized to ``size`` x ``size`` whole, as their masks are, not cropped."""
        from torchvision import transforms as T

        if self.kind == "folder" and dense:
            return T.Compose([T.Resize((self.size, self.size)), T.ToTensor(), T.Normalize(self.mean, self.std)])
        if self.kind == "folder":
            return self.folder_transforms(train=False)

        def to_input(img: Any) -> Tensor:
            x = torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).reshape(img.height, img.width, -1)
            return self.normalize(self.fit_batch(x.permute(2, 0, 1)[None]))[0]

        return T.Compose([T.Resize((self.native_size, self.native_size)), to_input])
