"""Using a trained checkpoint: rebuild its model, read images the way its test images were read, predict top-k."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from cnnlab.data import InputPipeline, load_images
from cnnlab.registry import build_model
from cnnlab.train.checkpoint import BEST, load_checkpoint, load_model_state


def model_from_checkpoint(run_or_ckpt: str | os.PathLike[str], *, prefer: str = BEST) -> tuple[nn.Module, dict]:
    """(the model in eval mode with the checkpoint's weights, the checkpoint's ``meta``). A run folder gives
    its best checkpoint (or the last one when it has no best)."""
    state = load_checkpoint(run_or_ckpt, prefer=prefer)
    meta = state["meta"]
    kwargs = meta.get("model_kwargs", {})  # plain data: layers by name
    model = build_model(meta["model"], kwargs, num_classes=meta["num_classes"], in_chans=meta["in_chans"])
    load_model_state(model, state)
    return model.eval(), {**meta, "path": state["path"]}


def input_pipeline(meta: dict[str, Any]) -> InputPipeline:
    """How the checkpoint's model takes an image: the pipeline its training stored."""
    return InputPipeline.from_dict(meta["input"])


@torch.no_grad()
def predict(
    model: nn.Module, meta: dict[str, Any], images: Sequence[str | os.PathLike[str]], *, topk: int = 5
) -> list[list[tuple[str, float]]]:
    """For each image, its ``topk`` (class name, probability) pairs, most likely first."""
    probs = model.eval()(load_images(images, input_pipeline(meta))).softmax(dim=1)
    top = probs.topk(min(topk, probs.shape[1]), dim=1)
    classes = meta["classes"]
    return [
        [(classes[i], float(p)) for p, i in zip(ps.tolist(), idx.tolist(), strict=True)]
        for ps, idx in zip(top.values, top.indices, strict=True)
    ]
