"""Grad-CAM: the regions of an image that a classifier's decision rests on.

Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization",
Sec. 3. For a class c and the K feature maps A^k of a conv layer, each map's weight is the spatial mean of the
gradient of the class score y^c (the logit, before the softmax) with respect to it,
``alpha_k = (1/Z) sum_ij dy^c / dA^k_ij`` (Eq. 1), and the map is ``ReLU(sum_k alpha_k A^k)`` (Eq. 2): the ReLU keeps
what raises the class score. It has the layer's resolution; :meth:`GradCam.upsampled` brings it to the image's
(bilinear) to be drawn over it. The default layer is the model's last stage (``feature_info[-1]``), the paper's
choice of "the last convolutional layer".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError, suggest
from cnnlab.plotting import pyplot, save_figure


@dataclass(frozen=True)
class GradCam:
    """What :func:`gradcam` computed for a batch of N images."""

    maps: Tensor  # N x h x w: ReLU(sum_k alpha_k A^k) at the layer's resolution
    weights: Tensor  # N x K: alpha_k of each of the layer's K maps
    target: Tensor  # N: the class each map explains
    probs: Tensor  # N: the softmax probability of that class
    layer: str  # the module whose output the maps weigh

    def upsampled(self, size: tuple[int, int]) -> Tensor:
        """N x H x W maps in [0, 1]: upsampled bilinearly and divided by their maximum (a map that is zero
        everywhere, where nothing raises the class score, stays zero)."""
        up = F.interpolate(self.maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        peak = up.flatten(1).amax(1).clamp(min=torch.finfo(up.dtype).tiny)
        return up / peak.view(-1, 1, 1)


def default_layer(model: nn.Module) -> str:
    """The model's last stage (``feature_info[-1]``): the last convolutional features before the head."""
    info = getattr(model, "feature_info", None)
    if not info:
        raise ModelArgumentError(f"{type(model).__name__} has no feature_info: name the layer to explain")
    return info[-1].module


def gradcam(model: nn.Module, x: Tensor, target: int | Tensor | None = None, *, layer: str | None = None) -> GradCam:
    """Grad-CAM of ``model`` (evaluated in eval mode, restored afterwards) on the images ``x`` (N x C x H x W).

    ``target``: the class to explain, one for all or one per image (default: each image's predicted class);
    ``layer``: a module name (default: :func:`default_layer`).
    """
    if getattr(model, "dense_output", False):
        raise ModelArgumentError(
            f"{getattr(model, 'model_name', type(model).__name__)} predicts a class per pixel; Grad-CAM explains "
            "one class score per image (a classifier)"
        )
    name = layer or default_layer(model)
    modules = dict(model.named_modules())
    if name not in modules:
        raise ModelArgumentError(f"no layer {name!r} in the model.{suggest(name, list(modules))}")
    taken: list[Tensor] = []

    def keep(_module: nn.Module, _args: object, out: Tensor) -> Tensor:
        taken.append(out)
        return out.clone()  # what follows may act in place; the kept maps stay as the layer gave them

    was_training = model.training
    handle = modules[name].register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model.eval()(x)
            if not taken or taken[0].ndim != 4:
                raise ModelArgumentError(f"layer {name!r} must give N x K x h x w feature maps")
            chosen = _targets(target, logits)
            scores = logits.gather(1, chosen[:, None])
            (grads,) = torch.autograd.grad(scores.sum(), taken[0])  # images are independent in eval mode
    finally:
        handle.remove()
        model.train(was_training)
    acts = taken[0].detach()
    weights = grads.mean(dim=(2, 3))  # Eq. 1
    maps = F.relu((weights[:, :, None, None] * acts).sum(1))  # Eq. 2
    probs = logits.detach().softmax(1).gather(1, chosen[:, None])[:, 0]
    return GradCam(maps=maps, weights=weights, target=chosen, probs=probs, layer=name)


def _targets(target: int | Tensor | None, logits: Tensor) -> Tensor:
    n, classes = logits.shape
    if target is None:
        return logits.argmax(1)
    chosen = torch.as_tensor(target).to(device=logits.device, dtype=torch.long).flatten()
    chosen = chosen.expand(n) if chosen.numel() == 1 else chosen
    if chosen.numel() != n or bool(((chosen < 0) | (chosen >= classes)).any()):
        raise ModelArgumentError(
            f"the class to explain must be one in 0..{classes - 1}, or one per image ({n}); got {chosen.tolist()}"
        )
    return chosen


def overlay(image: np.ndarray, heat: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """``image`` (H x W x 3 or H x W uint8) blended with ``heat`` (H x W in [0, 1]) in matplotlib's jet colours,
    ``alpha`` of the colour where the map is 1 and none where it is 0: H x W x 3 uint8."""
    from matplotlib import colormaps

    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
    colour = colormaps["jet"](heat)[..., :3] * 255
    weight = alpha * heat[..., None]
    return (rgb * (1 - weight) + colour * weight).round().clip(0, 255).astype(np.uint8)


def draw_gradcam(image: np.ndarray, heat: np.ndarray, path: Any, *, title: str = "") -> Any:
    """The input ``image`` (H x W x C or H x W uint8) and, beside it, its :func:`overlay` with ``heat`` (H x W in
    [0, 1]), saved as a PNG at ``path``."""
    plt = pyplot()
    grey = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.6))
    axes[0].imshow(grey, cmap="gray" if grey.ndim == 2 else None)
    axes[0].set_title("input", fontsize=8)
    axes[1].imshow(overlay(grey, heat))
    axes[1].set_title("Grad-CAM", fontsize=8)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
