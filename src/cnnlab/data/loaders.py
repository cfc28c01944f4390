"""Batch loaders: ``loader.batches(epoch, start_step)`` yields (images, labels) on the CPU.

Every batch is a function of (seed, rank, epoch, step) alone, whatever the number of worker processes: the
training order comes from a ``DistributedSampler`` seeded with the run's seed (one replica when not
distributed), tensor batches are augmented with a generator seeded per step, and each image file is
transformed under a generator seeded by its position in the epoch. So a run resumed at (epoch, step) sees the
same batches as one that never stopped, with ``workers=0`` or ``workers=4``, and there is no loader state to
save beyond the epoch and step.

In-memory data need no worker processes on 2 CPU cores (for 28-32 px images they cost more than they save);
image files are decoded in ``workers`` processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from cnnlab.data.datasets import Dataset, FolderSplit, Split, TensorSplit
from cnnlab.data.transforms import AugmentSpec, InputPipeline, random_crop_flip, step_generator
from cnnlab.errors import DataError


class TensorLoader:
    """Batches of an in-memory split: shuffled (training), augmented, fitted to the input size, normalised."""

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

    def __len__(self) -> int:
        return -(-len(self.indices(0)) // self.batch_size)

    def batches(self, epoch: int = 0, start_step: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        order = torch.tensor(self.indices(epoch), dtype=torch.int64)
        split = self.split
        assert isinstance(split, TensorSplit)
        for step, idx in enumerate(order.split(self.batch_size)):
            if step < start_step:
                continue
            x, y = split.x[idx], split.y[idx]
            if self.augment is not None and (self.augment.pad or self.augment.flip):
                gen = step_generator(self.seed, self.rank, epoch, step)
                x = random_crop_flip(x, pad=self.augment.pad, flip=self.augment.flip, gen=gen)
            x = self.pipeline.normalize(self.pipeline.fit_batch(x))
            yield (x.pin_memory(), y.pin_memory()) if self.pin_memory else (x, y)


class _EpochImages(torch.utils.data.Dataset):
    """The images of one epoch in order: item ``pos`` is file ``order[pos]``, transformed under a generator
    seeded by (seed, rank, epoch, pos), so its augmentation does not depend on which worker decodes it."""

    def __init__(self, split: FolderSplit, order: list[int], transform: Any, key: tuple[int, int, int]) -> None:
        self.split, self.order, self.transform, self.key = split, order, transform, key

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, pos: int) -> tuple[Tensor, int]:
        image, label = self.split.item(self.order[pos])
        seed = int(np.random.SeedSequence([*self.key, pos]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):  # torchvision's transforms draw from the global generator
            torch.manual_seed(seed)
            return self.transform(image), label


class FolderLoader(TensorLoader):
    """Batches of image files through a DataLoader (decoding images is worth worker processes)."""

    def __init__(self, split: Split, pipeline: InputPipeline, *, workers: int = 0, **kwargs: Any) -> None:
        super().__init__(split, pipeline, **kwargs)
        self.workers = workers
        self.transform = pipeline.folder_transforms(train=self.augment is not None)

    def batches(self, epoch: int = 0, start_step: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        assert isinstance(self.split, FolderSplit)
        images = _EpochImages(self.split, self.indices(epoch), self.transform, (self.seed, self.rank, epoch))
        start = start_step * self.batch_size
        yield from torch.utils.data.DataLoader(
            images,
            batch_size=self.batch_size,
            sampler=range(start, len(images)),
            num_workers=self.workers,
            pin_memory=self.pin_memory,
            # its own generator for the workers' base seed: by default a DataLoader draws it from the global
            # generator, whose state a checkpoint saves for dropout, and a resumed epoch would draw it twice
            generator=torch.Generator().manual_seed(self.seed),
        )


def make_loader(
    data: Dataset,
    split: str,
    pipeline: InputPipeline,
    *,
    batch_size: int,
    augment: bool = True,
    seed: int = 0,
    workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> TensorLoader:
    """The loader of ``split`` ("train": shuffled, augmented when ``augment``; "val" and "test": in order)."""
    part = data.split(split)
    if isinstance(part, TensorSplit) and tuple(part.x.shape[-2:]) != (pipeline.native_size,) * 2:
        raise DataError(
            f"{data.name} holds {tuple(part.x.shape[-2:])} images; this model was trained on "
            f"{pipeline.native_size}x{pipeline.native_size} ones"
        )
    train = split == "train"
    common: dict[str, Any] = dict(
        batch_size=batch_size, train=train, augment=data.augment if augment else None, seed=seed, rank=rank,
        world_size=world_size, pin_memory=pin_memory,
    )  # fmt: skip
    if isinstance(part, TensorSplit):
        return TensorLoader(part, pipeline, **common)
    return FolderLoader(part, pipeline, workers=workers, **common)
