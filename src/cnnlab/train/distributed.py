"""Data-parallel training with PyTorch's DistributedDataParallel.

``torchrun --nproc-per-node N -m cnnlab train ...`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; the
trainer then joins a process group (gloo on the CPU, nccl on CUDA, one GPU per process), wraps the model in DDP
(gradients averaged over the ranks after each backward), gives each rank its own shard of every epoch through a
DistributedSampler, and sums the metrics over the ranks. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from cnnlab.errors import ConfigError, TrainingError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when init_distributed joined the process group (and cleanup leaves it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``: this process's GPU when CUDA is there, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from e
    if device.type not in ("cpu", "cuda"):  # meta has no values, mps and the others no cnnlab support
        raise ConfigError(f"cnnlab trains and evaluates on cpu or cuda, not {name!r} (use auto, cpu, cuda or cuda:N)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def init_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group when there is one; the device this process trains on."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    owns = world > 1 and not dist.is_initialized()  # a caller's own process group stays the caller's
    if owns:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, owns), device


def wrap(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP and torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def all_reduce(t: Tensor, info: DistInfo, op: Any = dist.ReduceOp.SUM) -> Tensor:
    """``t`` reduced over the ranks (summed by default); ``t`` itself when not distributed."""
    if not info.enabled:
        return t
    buf = t.to("cuda" if dist.get_backend() == "nccl" else "cpu", copy=True)
    dist.all_reduce(buf, op=op)
    return buf.to(t.device)


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on any: a decision all ranks take together (one all-reduce)."""
    if not info.enabled:
        return flag
    return bool(all_reduce(torch.tensor([float(flag)]), info, dist.ReduceOp.MAX).item())


def all_gather_object(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_buffers(model: nn.Module, info: DistInfo) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank. DDP broadcasts them before each training
    forward, but the last forward of an epoch leaves each rank with statistics updated by its own batch."""
    if info.enabled:
        for buf in unwrap(model).buffers():
            dist.broadcast(buf, src=0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def check_replicas_identical(model: nn.Module, info: DistInfo) -> None:
    """Raise TrainingError unless every rank holds exactly the same weights and buffers (elementwise max over
    the ranks equals the min)."""
    if not info.enabled:
        return
    flat = torch.cat([t.detach().double().flatten().cpu() for t in unwrap(model).state_dict().values()])
    hi, lo = all_reduce(flat, info, dist.ReduceOp.MAX), all_reduce(flat, info, dist.ReduceOp.MIN)
    if not torch.equal(hi, lo):
        raise TrainingError("the ranks ended with different weights (a non-deterministic op or a lost gradient)")


def cleanup(info: DistInfo) -> None:
    """Leave the process group that :func:`init_distributed` joined."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()
