"""Using a trained checkpoint: rebuild its model, read images the way its data were read, predict top-k."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cnnlab.errors import DataError
from cnnlab.registry import create_model
from cnnlab.train.checkpoint import BEST, load_checkpoint, load_model_state


def model_from_checkpoint(run_or_ckpt: str | os.PathLike[str], *, prefer: str = BEST) -> tuple[nn.Module, dict]:
    """(the model in eval mode with the checkpoint's weights, the checkpoint's ``meta``). A run folder gives
    its best checkpoint (or the last one when it has no best)."""
    state = load_checkpoint(run_or_ckpt, prefer=prefer)
    meta = state["meta"]
    model = create_model(
        meta["model"], num_classes=meta["num_classes"], in_chans=meta["in_chans"], **meta.get("model_kwargs", {})
    )
    load_model_state(model, state)
    return model.eval(), {**meta, "path": state["path"]}


def open_image(path: str | os.PathLike[str], *, mode: str) -> Any:
    """A PIL image in ``mode`` ("L" or "RGB"); a DataError when the file is missing or not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.convert(mode)
    except FileNotFoundError as e:
        raise DataError(f"no image at {str(path)!r}") from e
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"cannot read {str(path)!r} as an image ({type(e).__name__}: {e})") from e


def preprocess(images: Sequence[str | os.PathLike[str]], meta: dict[str, Any]) -> Tensor:
    """N x C x H x W, read, resized and normalised like the checkpoint's test images."""
    from torchvision import transforms as T

    size = meta["image_size"]
    resize = (
        [T.Resize(size * 8 // 7), T.CenterCrop(size)]
        if str(meta.get("data", "")).startswith("imagefolder")
        else [T.Resize((size, size))]
    )
    tf = T.Compose([*resize, T.ToTensor(), T.Normalize(meta["mean"], meta["std"])])
    mode = "L" if meta["in_chans"] == 1 else "RGB"
    return torch.stack([tf(open_image(p, mode=mode)) for p in images])


@torch.no_grad()
def predict(
    model: nn.Module, meta: dict[str, Any], images: Sequence[str | os.PathLike[str]], *, topk: int = 5
) -> list[list[tuple[str, float]]]:
    """For each image, its ``topk`` (class name, probability) pairs, most likely first."""
    probs = model.eval()(preprocess(images, meta)).softmax(dim=1)
    top = probs.topk(min(topk, probs.shape[1]), dim=1)
    classes = meta["classes"]
    return [
        [(classes[i], float(p)) for p, i in zip(ps.tolist(), idx.tolist(), strict=True)]
        for ps, idx in zip(top.values, top.indices, strict=True)
    ]


def default_output(meta: dict[str, Any], suffix: str) -> Path:
    path = Path(meta["path"])
    return path.with_suffix(suffix)
