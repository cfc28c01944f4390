"""Preprocessing as data: how an image file becomes the input of a model whose weights were trained elsewhere.

Every registered model carries a :class:`Preprocess` (``cnnlab.model_entry(name).preprocess``, and
``model.preprocess`` on a built model): the values of the weights that its first peer publishes
(``torchvision``'s ``DEFAULT`` weights, ``timm``'s default pretrained config), which the tests check against
torchvision's ``Weights.transforms()`` and timm's ``pretrained_cfg``; a model without a peer has the convention of
its input size (:func:`default_preprocess`). :func:`transforms_for` builds the evaluation transform from it:
resize the shorter side to ``size / crop_pct``, crop the centre ``size`` x ``size``, scale to [0, 1], normalise.

A run that cnnlab trained keeps its own recorded :class:`~cnnlab.data.transforms.InputPipeline` instead (its
data set's statistics and size); this is for weights from elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from cnnlab.data.stats import CIFAR10, IMAGENET, ChannelStats
from cnnlab.errors import DataError

Interpolation = Literal["bilinear", "bicubic", "nearest"]
IMAGENET_SIZE = 200
"""Inputs of this size and up are ImageNet-style (224, 227, 299, 520); smaller ones are CIFAR- and digit-sized."""


@dataclass(frozen=True)
class Preprocess:
    """The evaluation preprocessing that a model's weights expect.

    ``crop_pct`` is the fraction of the resized image that the centre crop keeps (timm's name): the shorter side
    is resized to ``floor(size / crop_pct)`` (256 for 224 at 0.875, torchvision's classic evaluation), then the
    centre ``size`` x ``size`` is cropped. A dense-output model (segmentation) is resized and not cropped.
    """

    size: int = 224  # the input's height and width (the centre crop)
    crop_pct: float = 0.875  # 224 / 256: torchvision's IMAGENET1K_V1 evaluation
    interpolation: Interpolation = "bilinear"  # torchvision's resize; timm's TF-ported weights use bicubic
    mean: tuple[float, ...] = IMAGENET.mean  # per channel, of images scaled to [0, 1]
    std: tuple[float, ...] = IMAGENET.std

    def __post_init__(self) -> None:
        if not 0 < self.crop_pct <= 1 or self.size < 1 or len(self.mean) != len(self.std):
            raise DataError(f"a Preprocess needs size >= 1, 0 < crop_pct <= 1 and one std per mean; got {self}")

    @classmethod
    def of(cls, stats: ChannelStats, **fields: Any) -> Preprocess:
        """A Preprocess that normalises with ``stats``."""
        return cls(mean=tuple(stats.mean), std=tuple(stats.std), **fields)

    @property
    def resize_size(self) -> int:
        """The shorter side before the crop: ``floor(size / crop_pct)`` (timm's rule; the small epsilon keeps
        ``299 / (299 / 342)`` at 342)."""
        return math.floor(self.size / self.crop_pct + 1e-6)

    @property
    def in_chans(self) -> int:
        return len(self.mean)


TORCHVISION_V2 = Preprocess(crop_pct=224 / 232)
"""torchvision's IMAGENET1K_V2 weights (and ShuffleNet v2 x1.5, x2.0): resize 232, crop 224, bilinear."""
TF_INCEPTION = ChannelStats((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
"""The [-1, 1] input of the weights ported from TensorFlow (Inception, Xception); torchvision's Inception-v3 and
GoogLeNet reach it from ImageNet-normalised input through their ``transform_input``."""


def default_preprocess(size: int) -> Preprocess:
    """The convention for a model without a peer's weights, from its paper's input ``size``: ImageNet's statistics
    and torchvision's 0.875 crop at ImageNet sizes; CIFAR-10's statistics and no crop for the small models (the
    CIFAR nets and the 28-60 px ones, which take their data set's own image whole)."""
    if size >= IMAGENET_SIZE:
        return Preprocess(size=size)
    return Preprocess.of(CIFAR10, size=size, crop_pct=1.0)


def transforms_for(model: Any, *, dense: bool | None = None) -> Any:
    """The torchvision transform that turns one PIL image into the input of ``model`` (a model that
    :func:`cnnlab.create_model` built, which carries its ``preprocess``, or a :class:`Preprocess`): resize the
    shorter side to ``resize_size``, centre crop ``size`` (not for a dense-output model, which keeps the whole
    image; ``dense`` says which for a Preprocess), to a float tensor in [0, 1], normalise. Convert the image to RGB
    (or L for one channel) first."""
    from torchvision import transforms as T

    pre = model if isinstance(model, Preprocess) else getattr(model, "preprocess", None)
    if not isinstance(pre, Preprocess):
        raise DataError(f"{type(model).__name__} carries no preprocess; build it with cnnlab.create_model")
    in_chans = getattr(model, "in_chans", pre.in_chans)
    if in_chans != pre.in_chans:
        name = getattr(model, "model_name", type(model).__name__)
        raise DataError(
            f"{name} takes {in_chans}-channel input, but its preprocessing holds the statistics of "
            f"{pre.in_chans}-channel images (those its published weights were trained on); build it with "
            f"in_chans={pre.in_chans}, or give transforms_for a Preprocess with {in_chans} means and stds"
        )
    mode = getattr(T.InterpolationMode, pre.interpolation.upper())
    steps = [T.Resize(pre.resize_size, interpolation=mode)]
    if not (getattr(model, "dense_output", False) if dense is None else dense):
        steps.append(T.CenterCrop(pre.size))
    return T.Compose([*steps, T.ToTensor(), T.Normalize(pre.mean, pre.std)])
