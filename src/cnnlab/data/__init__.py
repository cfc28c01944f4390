"""Data: data sets with fixed train / validation / test splits, harder digits built from the embedded ones
(``mnist5k-rts``, ``mnist5k-cluttered``), class and size subsets, transforms, input pipelines and batch loaders;
segmentation data (``mnist5k-seg`` digit canvases, ``segfolder:PATH``) and its scores (:mod:`.metrics`); the
preprocessing that published weights expect, as data (:mod:`.preprocess`: :class:`Preprocess`, :func:`transforms_for`).

>>> from cnnlab.data import load_dataset, make_loader
>>> data = load_dataset("mnist5k")  # 3,600 train / 400 val / 1,000 test embedded digits
>>> pipe = data.pipeline(min_size=32)  # LeNet-5's 32x32 input: the 28x28 digits centred on a 32x32 canvas
>>> x, y = next(make_loader(data, "val", pipe, batch_size=100).batches())
>>> seg = load_segmentation("mnist5k-seg")  # 64x64 canvases, labels and size buckets per pixel

This package imports nothing from ``cnnlab.models``, ``cnnlab.train`` or ``cnnlab.cli`` (only torch, numpy,
torchvision, PIL and :mod:`cnnlab.errors`): models, the trainer and the commands import it.

May import: cnnlab.errors.
"""

from cnnlab.data.datasets import (
    AUGMENT,
    DATASETS,
    SEGMENTATION_DATASETS,
    STATS,
    Dataset,
    FolderSplit,
    Split,
    TensorSplit,
    is_segmentation,
    load_dataset,
    select,
)
from cnnlab.data.images import load_images, open_image
from cnnlab.data.loaders import FolderLoader, MaskFolderLoader, MaskLoader, TensorLoader, make_loader
from cnnlab.data.metrics import (
    IGNORE_INDEX,
    bucket_matrices,
    class_iou,
    confusion_matrix,
    mean_iou,
    pixel_accuracy,
    segmentation_scores,
)
from cnnlab.data.preprocess import Preprocess, default_preprocess, transforms_for
from cnnlab.data.segmentation import (
    MaskFolderSplit,
    MaskSplit,
    SegmentationDataset,
    load_any,
    load_segmentation,
)
from cnnlab.data.splits import DEFAULT_VAL_FRACTION, stratified_split
from cnnlab.data.stats import IMAGENET, ChannelStats
from cnnlab.data.transforms import AugmentSpec, InputPipeline, joint_crop_flip, random_crop_flip

__all__ = [
    "AUGMENT",
    "DATASETS",
    "DEFAULT_VAL_FRACTION",
    "IGNORE_INDEX",
    "IMAGENET",
    "SEGMENTATION_DATASETS",
    "STATS",
    "AugmentSpec",
    "ChannelStats",
    "Dataset",
    "FolderLoader",
    "FolderSplit",
    "InputPipeline",
    "MaskFolderLoader",
    "MaskFolderSplit",
    "MaskLoader",
    "MaskSplit",
    "Preprocess",
    "SegmentationDataset",
    "Split",
    "TensorLoader",
    "TensorSplit",
    "bucket_matrices",
    "class_iou",
    "confusion_matrix",
    "default_preprocess",
    "is_segmentation",
    "joint_crop_flip",
    "load_any",
    "load_dataset",
    "load_images",
    "load_segmentation",
    "make_loader",
    "mean_iou",
    "open_image",
    "pixel_accuracy",
    "random_crop_flip",
    "segmentation_scores",
    "select",
    "stratified_split",
    "transforms_for",
]
