"""Scores over labels, as plain functions on tensors: the confusion matrix (of images or of pixels), pixel
accuracy, intersection over union per class, mean IoU, and IoU per object-size bucket.

Everything starts from the confusion matrix ``m[i, j]`` (true class i predicted as j), which adds over batches,
so an evaluation accumulates matrices and scores them once (the standard protocol of Pascal VOC and of
torchvision's segmentation references). For class c, ``IoU_c = m[c, c] / (row_c + col_c - m[c, c])``: true
positives over the union of the pixels labelled c and those predicted c. A class neither labelled nor predicted
has no IoU (NaN) and is left out of the mean. Pixels labelled :data:`IGNORE_INDEX` (Pascal VOC's 255, its
object borders) are counted nowhere when the caller says so (``ignore_index``; a classifier's labels go
beyond 255).

IoU per size bucket: each bucket's matrix counts only the pixels that a size map assigns to it (for
``mnist5k-seg``, the pixels inside the boxes of its small or of its large digits, their background included),
so a small digit's missed strokes and the false positives around it count against the small bucket alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

IGNORE_INDEX = 255
"""The label of pixels that no score counts (Pascal VOC's borders and "void")."""


def confusion_matrix(
    pred: Tensor, target: Tensor, num_classes: int, *, ignore_index: int | None = None, where: Tensor | None = None
) -> Tensor:
    """``m[i, j]``: the items (images or pixels) of true class i predicted as j, over every element of ``pred``
    and ``target`` (integer tensors of the same shape) except those labelled ``ignore_index`` (segmentation
    passes :data:`IGNORE_INDEX`; None counts every label) and, when ``where`` (a boolean tensor of that shape)
    is given, those where it is False. int64, num_classes x num_classes."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    keep = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    if where is not None:
        keep &= where
    t, p = target[keep].long(), pred[keep].long()
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).view(num_classes, num_classes)


def pixel_accuracy(matrix: Tensor) -> float:
    """The fraction of counted items predicted right (NaN when none is counted)."""
    total = int(matrix.sum())
    return float(matrix.trace()) / total if total else float("nan")


def class_iou(matrix: Tensor) -> Tensor:
    """IoU of each class (float64); NaN for a class neither labelled nor predicted."""
    m = matrix.double()
    hits = m.diagonal()
    union = m.sum(0) + m.sum(1) - hits
    return torch.where(union > 0, hits / union.clamp_min(1), torch.full_like(hits, float("nan")))


def mean_iou(matrix: Tensor, classes: Sequence[int] | None = None) -> float:
    """The mean of :func:`class_iou` over the classes that have one (``classes``: over those only, for
    example ``range(1, 11)`` for the digits without the background); NaN when none has one."""
    iou = class_iou(matrix)
    if classes is not None:
        iou = iou[list(classes)]
    return float(iou.nanmean()) if not iou.isnan().all() else float("nan")


def bucket_matrices(
    pred: Tensor,
    target: Tensor,
    sizes: Tensor,
    num_classes: int,
    buckets: Sequence[str],
    *,
    ignore_index: int | None = IGNORE_INDEX,
) -> dict[str, Tensor]:
    """One confusion matrix per size bucket: ``buckets[k]`` counts the pixels where ``sizes == k + 1``."""
    return {
        name: confusion_matrix(pred, target, num_classes, ignore_index=ignore_index, where=sizes == k)
        for k, name in enumerate(buckets, 1)
    }


def segmentation_scores(
    matrix: Tensor, buckets: dict[str, Tensor] | None = None, *, classes: Sequence[str] | None = None
) -> dict[str, object]:
    """Pixel accuracy, mean IoU, IoU per class (by name when ``classes`` are given) and, for each bucket of
    ``buckets`` (as :func:`bucket_matrices` gives them), its mean IoU: plain numbers for a results file."""
    names = list(classes) if classes is not None else [str(c) for c in range(matrix.shape[0])]
    scores: dict[str, object] = {
        "pixel_accuracy": pixel_accuracy(matrix),
        "mean_iou": mean_iou(matrix),
        "class_iou": dict(zip(names, class_iou(matrix).tolist(), strict=True)),
    }
    if buckets:
        scores["bucket_mean_iou"] = {name: mean_iou(m) for name, m in buckets.items()}
    return scores
