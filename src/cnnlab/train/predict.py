"""Using a trained checkpoint: rebuild its model, read images the way its test images were read, predict top-k
(a classifier) or a class per pixel (a segmentation net: a mask PNG and an overlay PNG per image).

A model trained elsewhere (a registered model with weights from a file, torchvision or timm:
:func:`load_for_inference` with ``weights``) reads images with the preprocessing its weights expect
(:func:`cnnlab.data.transforms_for`); a checkpoint of cnnlab's keeps its recorded input pipeline."""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import (
    InputPipeline,
    Preprocess,
    SegmentationDataset,
    load_any,
    load_images,
    make_loader,
    open_image,
    transforms_for,
)
from cnnlab.errors import ConfigError, TrainingError
from cnnlab.optimize import optimize_for_inference
from cnnlab.plotting import label_colours
from cnnlab.registry import build_model, list_models, model_entry
from cnnlab.train.atomic import write_atomic
from cnnlab.train.checkpoint import BEST, load_checkpoint, load_model_state, other_checkpoint
from cnnlab.weights import load_pretrained, nonfinite_tensors


def model_from_checkpoint(run_or_ckpt: str | os.PathLike[str], *, prefer: str = BEST) -> tuple[nn.Module, dict]:
    """(the model in eval mode with the checkpoint's weights, the checkpoint's ``meta``). A run folder gives
    its best checkpoint (or the last one when it has no best). Weights that hold a NaN or an infinity are refused:
    such a model's every output is NaN, and its argmax a constant class that would pass for a score."""
    state = load_checkpoint(run_or_ckpt, prefer=prefer)
    bad = nonfinite_tensors(state["model"])
    if bad:
        path = Path(state["path"])
        raise TrainingError(
            f"the weights in {str(path)!r} hold NaN or infinite values ({len(bad)} tensors, first: "
            f"{', '.join(bad[:3])}): its model outputs NaN, so its scores would mean nothing (weights of a run that "
            f"diverged){other_checkpoint(path) or '; use a checkpoint saved before it diverged'}"
        )
    meta = state["meta"]
    kwargs = meta.get("model_kwargs", {})  # plain data: layers by name
    model = build_model(meta["model"], kwargs, num_classes=meta["num_classes"], in_chans=meta["in_chans"])
    load_model_state(model, state)
    return model.eval(), {**meta, "path": state["path"]}


def load_for_inference(source: str, *, weights: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """(the model in eval mode, its ``meta``) from a run folder or checkpoint (:func:`model_from_checkpoint`), or,
    with ``weights`` (a file, ``"torchvision"`` or ``"timm"``: :func:`cnnlab.load_pretrained`), the registered model
    ``source`` with them loaded, whose ``meta`` holds its ``preprocess`` and class names."""
    if weights is None:
        if source in list_models() and not Path(source).exists():
            raise ConfigError(
                f"{source} is a model name: give --weights (a weights file, 'torchvision' or 'timm') to use weights "
                "trained elsewhere, or give a run folder or checkpoint instead"
            )
        return model_from_checkpoint(source)
    model = build_model(source)
    load_pretrained(model, weights)
    meta = {
        "model": source, "classes": class_names(model), "num_classes": model.num_classes,
        "in_chans": model.in_chans, "preprocess": model.preprocess, "path": str(weights),
    }  # fmt: skip
    return model.eval(), meta


def class_names(model: nn.Module) -> list[str]:
    """The class names that the model's torchvision peer publishes for its number of classes (ImageNet-1k's for
    any 1000-class model: torchvision and timm order them alike), else the indices."""
    import torchvision

    peers = [p for p in model_entry(model.model_name).peers if p.library == "torchvision"]
    imagenet = ["resnet50"] if model.num_classes == 1000 else []
    for name in [p.name for p in peers] + imagenet:
        categories = torchvision.models.get_model_weights(name).DEFAULT.meta.get("categories", [])
        if len(categories) == model.num_classes:
            return list(categories)
    return [str(k) for k in range(model.num_classes)]


def read_inputs(meta: dict[str, Any], images: Sequence[str | os.PathLike[str]]) -> torch.Tensor:
    """N x C x H x W network inputs: each file read as the checkpoint's test images were, or with the
    preprocessing of weights trained elsewhere (``meta["preprocess"]``)."""
    pre = meta.get("preprocess")
    if pre is None:
        return load_images(images, input_pipeline(meta))
    transform = transforms_for(pre)
    return torch.stack([transform(open_image(p, mode="L" if pre.in_chans == 1 else "RGB")) for p in images])


def shown(meta: dict[str, Any], x: torch.Tensor) -> np.ndarray:
    """Network inputs (N x C x H x W) as the images they are, N x H x W x C uint8: un-normalised."""
    stats = meta.get("preprocess") or input_pipeline(meta)
    mean, std = stats.mean, stats.std
    pixels = x.detach().float() * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)
    return (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def input_size(meta: dict[str, Any]) -> tuple[int, int]:
    """(channels, height and width) of the model's input."""
    pre: Preprocess | None = meta.get("preprocess")
    if pre is not None:
        return pre.in_chans, pre.size
    pipeline = input_pipeline(meta)
    return pipeline.in_chans, pipeline.size


RUNTIMES = ("torch", "onnxruntime", "openvino")
"""What runs a checkpoint's model in ``cnnlab predict``: eager PyTorch, or ONNX Runtime or OpenVINO on the model
exported with its batch norms folded (:func:`cnnlab.optimize_for_inference` with that backend)."""

CALIBRATION_IMAGES = 512
"""Training images whose activations set the int8 scales: a few hundred cover the ranges (Krishnamoorthi 2018,
Sec. 3.1, calibrates on 100s of images; ONNX Runtime's examples on a few hundred), in seconds for small models."""


def run_data(meta: dict[str, Any], *, name: str | None = None, data_dir: str | None = None) -> Any:
    """The data set a checkpoint was trained on, split and subset as it was (or the data set ``name``, whole),
    from ``data_dir`` (default: the run's)."""
    subset = meta.get("subset", {}) if name is None else {}  # the classes it was trained on
    return load_any(
        name or meta["data"], data_dir=data_dir or meta.get("data_dir", "data"), val_fraction=meta["val_fraction"],
        **subset,
    )  # fmt: skip


def calibration_batches(
    meta: dict[str, Any], *, images: int = CALIBRATION_IMAGES, batch_size: int = 64
) -> list[torch.Tensor]:
    """The int8 calibration set of a checkpoint: ``images`` images of its own training split (the loader's seed-0
    shuffle, unaugmented), normalised as the model sees them, in batches."""
    loader = make_loader(run_data(meta), "train", input_pipeline(meta), batch_size=batch_size, augment=False)
    batches, seen = [], 0
    for x, *_ in loader.batches():
        batches.append(x[: images - seen])
        seen += len(batches[-1])
        if seen >= images:
            break
    return batches


def with_runtime(model: nn.Module, meta: dict[str, Any], runtime: str, *, int8: bool = False) -> nn.Module:
    """``model`` as ``runtime`` runs it (one of :data:`RUNTIMES`), for inputs of the checkpoint's pipeline; with
    ``int8``, quantized on :func:`calibration_batches` (the ONNX runtimes only)."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if int8 and runtime == "torch":
        raise ConfigError("int8 runs on an ONNX runtime: add --runtime onnxruntime or --runtime openvino")
    if runtime == "torch":
        return model
    if int8 and "data" not in meta:
        raise ConfigError("int8 calibrates on the run's own training images: give a run folder or its checkpoint, "
                          "not a model with --weights")  # fmt: skip
    chans, size = input_size(meta)
    example = torch.zeros(1, chans, size, size)
    return optimize_for_inference(
        model, example_input=example, backend=runtime, precision="int8" if int8 else "fp32",  # type: ignore[arg-type]
        calibration=calibration_batches(meta) if int8 else None,
    )  # fmt: skip


def input_pipeline(meta: dict[str, Any]) -> InputPipeline:
    """How the checkpoint's model takes an image: the pipeline its training stored."""
    return InputPipeline.from_dict(meta["input"])


@torch.no_grad()
def predict(
    model: nn.Module, meta: dict[str, Any], images: Sequence[str | os.PathLike[str]], *, topk: int = 5
) -> list[list[tuple[str, float]]]:
    """For each image, its ``topk`` (class name, probability) pairs, most likely first."""
    probs = model.eval()(read_inputs(meta, images)).softmax(dim=1)
    top = probs.topk(min(topk, probs.shape[1]), dim=1)
    classes = meta["classes"]
    return [
        [(classes[i], float(p)) for p, i in zip(ps.tolist(), idx.tolist(), strict=True)]
        for ps, idx in zip(top.values, top.indices, strict=True)
    ]


@torch.no_grad()
def predict_mask(model: nn.Module, meta: dict[str, Any], image: str | os.PathLike[str]) -> tuple[Any, np.ndarray]:
    """(the image as read, RGB or grey PIL, its H x W uint8 mask of class indices at the image's own size): the
    image fitted to the model's input as the test images were, its logits resized back (bilinear) before the
    arg max."""
    pre: Preprocess | None = meta.get("preprocess")
    if pre is not None:  # weights trained elsewhere: resized whole, the shorter side to the weights' size
        picture = open_image(image, mode="L" if pre.in_chans == 1 else "RGB")
        logits = model.eval()(transforms_for(pre, dense=True)(picture)[None])
        logits = F.interpolate(logits, size=(picture.height, picture.width), mode="bilinear", align_corners=False)
        return picture, logits.argmax(1)[0].to(torch.uint8).numpy()
    pipeline = input_pipeline(meta)
    picture = open_image(image, mode="L" if pipeline.in_chans == 1 else "RGB")
    logits = model.eval()(pipeline.image_transforms(dense=True)(picture)[None])  # 1 x K x size x size
    if pipeline.fit == "pad":  # the image's own part of the padded canvas
        top = left = (pipeline.size - pipeline.native_size) // 2
        logits = logits[..., top : top + pipeline.native_size, left : left + pipeline.native_size]
    logits = F.interpolate(logits, size=(picture.height, picture.width), mode="bilinear", align_corners=False)
    return picture, logits.argmax(1)[0].to(torch.uint8).numpy()


def write_mask_pngs(picture: Any, mask: np.ndarray, stem: Path, *, alpha: float = 0.5) -> tuple[Path, Path]:
    """``STEM_mask.png`` (a palette PNG: its values are the class indices, as a Pascal VOC mask, shown in
    :func:`~cnnlab.plotting.label_colours`) and ``STEM_overlay.png`` (the image blended with the colours,
    ``alpha`` of the colour), each written whole or not at all."""
    from PIL import Image

    colours = label_colours()
    indexed = Image.fromarray(mask)  # mode L, made P by its palette
    indexed.putpalette(colours.flatten().tolist())
    blend = np.asarray(picture.convert("RGB"), dtype=np.float32) * (1 - alpha) + colours[mask] * alpha
    overlay = Image.fromarray(blend.round().astype(np.uint8))
    paths = (stem.with_name(f"{stem.name}_mask.png"), stem.with_name(f"{stem.name}_overlay.png"))
    for picture_out, path in zip((indexed, overlay), paths, strict=True):
        buf = io.BytesIO()
        picture_out.save(buf, format="PNG")
        write_atomic(path, buf.getvalue())
    return paths


@torch.no_grad()
def sample_masks(
    model: nn.Module, data: SegmentationDataset, split: str, pipeline: InputPipeline, n: int, *, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images as read, N x C x H x W uint8; true masks; predicted masks) of ``n`` images spread evenly over
    ``split`` (mnist5k-seg's canvases follow the class order of their large digit)."""
    part = data.split(split)
    picked = part.subset(np.linspace(0, len(part) - 1, min(n, len(part))).astype(int))
    x, y, _ = next(make_loader(dataclasses.replace(data, test=picked), "test", pipeline, batch_size=n).batches())
    pred = model.eval()(x.to(device)).argmax(1).cpu()
    return pipeline.denormalize(x), y, pred


def iou_table(
    model: nn.Module, data: SegmentationDataset, loader: Any, *, device: torch.device
) -> tuple[dict[str, Any], list[list[Any]]]:
    """A segmentation split scored once: (the scores of :meth:`PixelTotals.scores` (mean IoU, pixel accuracy, IoU
    per class and per size bucket; None where a class or bucket has no pixels), one ``[class, labelled pixels,
    IoU]`` row per class)."""
    from cnnlab.train.engine import evaluate_pixels

    totals = evaluate_pixels(
        model, loader.batches(), device=device, num_classes=data.num_classes, bucket_names=data.size_buckets,
        ignore_index=data.ignore_index,
    )  # fmt: skip
    scores = totals.scores(data.classes, data.size_buckets)
    pixels = totals.matrix.sum(1)
    return scores, [[c, int(pixels[i]), scores["class_iou"][c]] for i, c in enumerate(data.classes)]


def score_text(v: float | None) -> str:
    """``0.8123`` as ``"0.8123"``; no score (no pixels of that class or size) as ``"-"``."""
    return "-" if v is None else f"{v:.4f}"
