"""Batch loaders: ``loader.batches(epoch, start_step)`` yields (images, labels) on the CPU.

Every batch is a function of (seed, rank, epoch, step) alone, whatever the number of worker processes: the
training order comes from a ``DistributedSampler`` seeded with the run's seed (one replica when not
distributed), tensor batches are augmented with a generator seeded per step, and each image file is
transformed under a generator seeded by its position in the epoch. So a run resumed at (epoch, step) sees the
same batches as one that never stopped, with ``workers=0`` or ``workers=4``, and there is no loader state to
save beyond the epoch and step.

In-memory data need no worker processes on 2 CPU cores (for 28-32 px images they cost more than they save);
image files are decoded in ``workers`` processes. A cnnlab error in a worker (an unreadable image, a mask with an
unknown class) reaches the caller as that error, with its own message: a DataLoader would re-raise it with the
worker's whole traceback as its message.

Segmentation splits (:mod:`cnnlab.data.segmentation`) yield (images, label maps, size maps): N x H x W int64 labels
(:data:`~cnnlab.data.metrics.IGNORE_INDEX` where unlabelled) and uint8 size buckets (zeros for a data set without
them), augmented with the same offsets and mirrors as their images (:func:`joint_crop_flip`). A training epoch
whose last batch would hold a single image drops it: BatchNorm cannot normalise one value per channel (the
image-pooling branch of ASPP), and which image is left over changes every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DistributedSampler, default_collate

from cnnlab.data.datasets import FolderSplit, Split, SplitSet, TensorSplit
from cnnlab.data.metrics import IGNORE_INDEX
from cnnlab.data.segmentation import MaskFolderSplit, MaskSplit
from cnnlab.data.transforms import (
    AugmentSpec,
    InputPipeline,
    joint_crop_flip,
    random_affine,
    random_crop_flip,
    step_generator,
)
from cnnlab.errors import CnnlabError, DataError


class TensorLoader:
    """Batches of an in-memory split: shuffled (training), augmented, fitted to the input size, normalised."""

    drop_single = False  # drop a last training batch of one image (segmentation: see the module docstring)

    def __init__(
        self,
        split: Split,
        pipeline: InputPipeline,
        *,
        batch_size: int,
        train: bool,
        augment: AugmentSpec | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pin_memory: bool = False,
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}")
        self.split, self.pipeline, self.batch_size, self.train = split, pipeline, batch_size, train
        self.augment = augment if train else None
        self.seed, self.rank, self.world_size, self.pin_memory = seed, rank, world_size, pin_memory
        self.sampler = DistributedSampler(
            range(len(split)), num_replicas=world_size, rank=rank, shuffle=train, seed=seed, drop_last=False
        )

    def indices(self, epoch: int) -> list[int]:
        """The split's indices that this rank sees in ``epoch``, in order."""
        if not self.train:  # every image exactly once over the ranks
            return list(range(self.rank, len(self.split), self.world_size))
        self.sampler.set_epoch(epoch)
        return list(self.sampler)

    def steps(self, epoch: int) -> list[range]:
        """Each batch of ``epoch`` as positions in :meth:`indices` (a last training batch of one image
        dropped for segmentation: see the module docstring)."""
        n = len(self.indices(epoch))
        chunks = [range(i, min(i + self.batch_size, n)) for i in range(0, n, self.batch_size)]
        if self.train and self.drop_single and len(chunks) > 1 and len(chunks[-1]) == 1:
            chunks.pop()
        return chunks

    def __len__(self) -> int:
        return len(self.steps(0))

    def batches(self, epoch: int = 0, start_step: int = 0) -> Iterator[tuple[Tensor, ...]]:
        order = torch.tensor(self.indices(epoch), dtype=torch.int64)
        for step, chunk in enumerate(self.steps(epoch)):
            if step < start_step:
                continue
            batch = self.take(order[chunk.start : chunk.stop], epoch, step)
            yield tuple(t.pin_memory() for t in batch) if self.pin_memory else batch

    def augmenting(self) -> bool:
        return self.augment is not None and self.augment.active

    def take(self, idx: Tensor, epoch: int, step: int) -> tuple[Tensor, ...]:
        """The batch of images ``idx``: (images, labels)."""
        split = self.split
        assert isinstance(split, TensorSplit)
        x, y = split.x[idx], split.y[idx]
        if self.augmenting():
            assert self.augment is not None
            gen = step_generator(self.seed, self.rank, epoch, step)
            x = random_crop_flip(x, pad=self.augment.pad, flip=self.augment.flip, gen=gen)
            if self.augment.affine:
                x = random_affine(x, rotate=self.augment.rotate, scale=self.augment.scale, gen=gen)
        return self.pipeline.normalize(self.pipeline.fit_batch(x)), y


class MaskLoader(TensorLoader):
    """Batches of an in-memory segmentation split: (images, label maps, size maps), moved together."""

    drop_single = True

    def take(self, idx: Tensor, epoch: int, step: int) -> tuple[Tensor, ...]:
        split = self.split
        assert isinstance(split, MaskSplit)
        x, y = split.x[idx], split.y[idx]
        sizes = split.sizes[idx] if split.sizes is not None else torch.zeros_like(y)
        if self.augmenting():
            assert self.augment is not None
            gen = step_generator(self.seed, self.rank, epoch, step)
            x, y, sizes = joint_crop_flip(
                [x, y, sizes], [0, IGNORE_INDEX, 0], pad=self.augment.pad, flip=self.augment.flip, gen=gen
            )
        fit = self.pipeline
        return fit.normalize(fit.fit_batch(x)), fit.fit_masks(y, fill=IGNORE_INDEX).long(), fit.fit_masks(sizes, fill=0)


@dataclass(frozen=True)
class _Failed:
    """The cnnlab error raised while an item was read, returned in its place (see the module docstring)."""

    error: CnnlabError


def _collate(items: list[Any]) -> Any:
    """The batch of ``items``, or the first of them that failed."""
    return next((i for i in items if isinstance(i, _Failed)), None) or default_collate(items)


class _EpochImages(torch.utils.data.Dataset):
    """The images of one epoch in order: item ``pos`` is file ``order[pos]``, transformed under a generator
    seeded by (seed, rank, epoch, pos), so its augmentation does not depend on which worker decodes it."""

    def __init__(self, split: Any, order: list[int], transform: Any, key: tuple[int, int, int]) -> None:
        self.split, self.order, self.transform, self.key = split, order, transform, key

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, pos: int) -> Any:
        try:
            item = self.split.item(self.order[pos])
        except CnnlabError as e:
            return _Failed(e)
        seed = int(np.random.SeedSequence([*self.key, pos]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):  # torchvision's transforms draw from the global generator
            torch.manual_seed(seed)
            return self.transform(*item)


def _image_and_label(transform: Any, image: Any, label: int) -> tuple[Tensor, int]:
    return transform(image), label


def _image_and_mask(pipeline: InputPipeline, flip: bool, image: Any, mask: Tensor) -> tuple[Tensor, ...]:
    """An image file and its mask resized to the input size (bilinear and nearest), mirrored together with
    probability 1/2 when ``flip``: (image, labels, a size map of zeros: folders have no size buckets)."""
    from torchvision.transforms import functional as TF

    size = [pipeline.size, pipeline.size]
    x = TF.to_tensor(TF.resize(image, size, antialias=True))
    y = TF.resize(mask[None], size, interpolation=TF.InterpolationMode.NEAREST)[0]
    if flip and bool(torch.rand(()) < 0.5):
        x, y = x.flip(-1), y.flip(-1)
    x = TF.normalize(x, list(pipeline.mean), list(pipeline.std))
    return x, y.long(), torch.zeros_like(y)


class FolderLoader(TensorLoader):
    """Batches of image files through a DataLoader (decoding images is worth worker processes)."""

    def __init__(self, split: Split, pipeline: InputPipeline, *, workers: int = 0, **kwargs: Any) -> None:
        super().__init__(split, pipeline, **kwargs)
        self.workers = workers
        self.transform = self.item_transform()

    def item_transform(self) -> Any:
        """What turns one item of the split into one sample of a batch."""
        return partial(_image_and_label, self.pipeline.folder_transforms(train=self.augment is not None))

    def batches(self, epoch: int = 0, start_step: int = 0) -> Iterator[tuple[Tensor, ...]]:
        assert isinstance(self.split, FolderSplit | MaskFolderSplit)
        images = _EpochImages(self.split, self.indices(epoch), self.transform, (self.seed, self.rank, epoch))
        for batch in torch.utils.data.DataLoader(
            images,
            batch_sampler=self.steps(epoch)[start_step:],
            num_workers=self.workers,
            # workers start from a fresh server process, not a fork of this one: a fork copies the locks of
            # threads this process already runs (OpenMP, ONNX Runtime, OpenVINO), and a child that inherits
            # one held can wait forever (Python 3.14 makes forkserver the default on Linux for this reason)
            multiprocessing_context="forkserver" if self.workers > 0 else None,
            pin_memory=self.pin_memory,
            # its own generator for the workers' base seed: by default a DataLoader draws it from the global
            # generator, whose state a checkpoint saves for dropout, and a resumed epoch would draw it twice
            generator=torch.Generator().manual_seed(self.seed),
            collate_fn=_collate,
        ):
            if isinstance(batch, _Failed):
                raise batch.error
            yield tuple(batch)


class MaskFolderLoader(FolderLoader):
    """Batches of image and mask files: (images, label maps, size maps of zeros)."""

    drop_single = True

    def item_transform(self) -> Any:
        return partial(_image_and_mask, self.pipeline, self.augment is not None and self.augment.flip)


def make_loader(
    data: SplitSet,
    split: str,
    pipeline: InputPipeline,
    *,
    batch_size: int,
    augment: bool | AugmentSpec = True,
    seed: int = 0,
    workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> TensorLoader:
    """The loader of ``split`` ("train": shuffled and augmented, "val" and "test": in order). ``augment``: True for
    the data set's standard augmentation, False for none, or the :class:`AugmentSpec` to apply; rotations and
    scalings are for in-memory classification data only (a DataError elsewhere)."""
    part = data.split(split)
    spec = data.augment if augment is True else augment or None
    if spec is not None and spec.affine and not isinstance(part, TensorSplit):
        raise DataError(
            f"rotate and scale augment in-memory classification data (mnist5k, mnist, cifar10, ...), not {data.name}"
        )
    if isinstance(part, TensorSplit | MaskSplit) and tuple(part.x.shape[-2:]) != (pipeline.native_size,) * 2:
        raise DataError(
            f"{data.name} holds {tuple(part.x.shape[-2:])} images; this model was trained on "
            f"{pipeline.native_size}x{pipeline.native_size} ones"
        )
    train = split == "train"
    common: dict[str, Any] = dict(
        batch_size=batch_size, train=train, augment=spec, seed=seed, rank=rank,
        world_size=world_size, pin_memory=pin_memory,
    )  # fmt: skip
    if isinstance(part, TensorSplit):
        return TensorLoader(part, pipeline, **common)
    if isinstance(part, MaskSplit):
        return MaskLoader(part, pipeline, **common)
    if isinstance(part, MaskFolderSplit):
        return MaskFolderLoader(part, pipeline, workers=workers, **common)
    return FolderLoader(part, pipeline, workers=workers, **common)
