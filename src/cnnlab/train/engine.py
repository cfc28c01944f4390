"""The training and evaluation loops: plain functions over a model, batches and a device."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.data.metrics import bucket_matrices, segmentation_scores
from cnnlab.data.metrics import confusion_matrix as confusion_matrix  # re-exported: eval and the run page use it
from cnnlab.errors import CnnlabError, DivergedError, TrainingError
from cnnlab.models.base import LogitsWithAux
from cnnlab.train.distributed import unwrap

NO_IGNORE = -100  # F.cross_entropy's default ignore index, which no class label takes: every label counts


class StopFlag:
    """Set by Ctrl-C, SIGTERM or a callback; the loop stops at the next step boundary, where a checkpoint is
    exact (stopping inside a step would leave BatchNorm statistics updated by a step that is then redone)."""

    def __init__(self) -> None:
        self.requested = False

    def set(self) -> None:
        self.requested = True


class StopRequested(KeyboardInterrupt):
    """Raised at a step boundary once a stop was requested (on any rank: every rank stops at the same step)."""


@dataclass
class StepInfo:
    """What a callback sees after each backward pass (gradients are in ``p.grad``, before the update)."""

    model: nn.Module  # without DDP or torch.compile wrappers
    epoch: int
    step: int  # within the epoch
    global_step: int
    loss: float
    stop: StopFlag | None = None

    def request_stop(self) -> None:
        """Stop after this step, as Ctrl-C does: a checkpoint is saved, then KeyboardInterrupt is raised."""
        if self.stop is not None:
            self.stop.set()


class Callback:
    """Hooks into :func:`cnnlab.train.fit`. Override what you need; ``info.request_stop()`` stops the run
    the way Ctrl-C does (a checkpoint is saved first)."""

    def on_step(self, info: StepInfo) -> None:  # after backward, before optimizer.step()
        pass

    def on_epoch_end(self, epoch: int, metrics: Any, model: nn.Module) -> None:
        pass


def block_names(model: nn.Module) -> list[str]:
    """The model's blocks from input to output: the units of each stage where the stage is a sequence (a
    CIFAR ResNet's ``S1.S1U1`` ...), the stage itself otherwise, then the head modules."""
    names: list[str] = []
    for stage in getattr(model, "stage_names", list)():
        module = model.get_submodule(stage)
        children = [n for n, m in module.named_children() if any(True for _ in m.parameters())]
        is_sequence_of_units = type(module) is nn.Sequential  # not a layer that is a Sequential (ConvBnAct)
        names += [f"{stage}.{c}" for c in children] if is_sequence_of_units and children else [stage]
    return names + list(getattr(model, "head_modules", ()))


class GradNormRecorder(Callback):
    """:func:`block_grad_norms` of every block at the first step of a run (``"init"``) and at its last
    (``"end"``): whether gradients vanish or explode from the output to the input (He et al. 2016, Sec. 4.1)."""

    def __init__(self, names: Sequence[str], last_step: int, norms: dict[str, dict[str, float]] | None = None) -> None:
        self.names, self.last_step = list(names), last_step
        self.norms: dict[str, dict[str, float]] = dict(norms or {})

    def on_step(self, info: StepInfo) -> None:
        if info.global_step in (0, self.last_step):
            self.norms["init" if info.global_step == 0 else "end"] = block_grad_norms(info.model, self.names)


def block_grad_norms(model: nn.Module, names: Iterable[str] | None = None) -> dict[str, float]:
    """The L2 norm of the gradients of each named module (default: the model's stages and head)."""
    if names is None:
        names = [*getattr(model, "stage_names", list)(), *getattr(model, "head_modules", ())]
    out = {}
    for name in names:
        grads = [p.grad.detach().float().norm() for p in model.get_submodule(name).parameters() if p.grad is not None]
        out[name] = float(torch.stack(grads).norm()) if grads else 0.0
    return out


def classification_loss(
    output: Tensor | LogitsWithAux,
    target: Tensor,
    *,
    label_smoothing: float,
    aux_weight: float,
    ignore_index: int = NO_IGNORE,
) -> tuple[Tensor, Tensor]:
    """(loss, main logits): the cross-entropy of each image (N x K logits, N labels) or, for segmentation, of
    each pixel (N x K x H x W logits, N x H x W labels), averaged over the labels that are not ``ignore_index``
    (segmentation passes :data:`~cnnlab.data.metrics.IGNORE_INDEX`). Auxiliary classifiers add ``aux_weight``
    times their own loss (GoogLeNet, Sec. 6; torchvision's segmentation references weigh the FCN head 0.5)."""
    kw = dict(label_smoothing=label_smoothing, ignore_index=ignore_index)
    if isinstance(output, LogitsWithAux):
        loss = F.cross_entropy(output.logits, target, **kw)
        for aux in output.aux:
            loss = loss + aux_weight * F.cross_entropy(aux, target, **kw)
        return loss, output.logits
    return F.cross_entropy(output, target, **kw), output


def memory_format(channels_last: bool) -> torch.memory_format:
    """NHWC when ``channels_last``, else the default (NCHW)."""
    return torch.channels_last if channels_last else torch.contiguous_format


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on ``device`` (CPU or CUDA) when ``enabled``, a run's resolved ``precision: bf16``
    (:mod:`cnnlab.train.precision`); nothing otherwise."""
    if enabled:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class EpochTotals:
    loss_sum: float = 0.0
    correct: int = 0
    count: int = 0
    steps: int = 0  # optimizer steps taken (where an interrupted epoch goes on)
    images: int = 0  # images seen (``count`` counts labels: pixels for segmentation)

    def add(self, loss: float, logits: Tensor, y: Tensor, *, ignore_index: int) -> None:
        """Count one step: ``loss`` (the mean over its labelled items), its correct predictions, its images."""
        labelled = y != ignore_index
        n = int(labelled.sum())
        self.steps += 1
        self.loss_sum += loss * n
        self.correct += int(((logits.argmax(1) == y) & labelled).sum())
        self.count += n
        self.images += len(y)

    def running(self) -> dict[str, str]:
        """The epoch's loss and accuracy so far, for a progress bar."""
        return {"loss": f"{self.loss_sum / self.count:.3f}", "acc": f"{self.correct / self.count:.3f}"}

    def as_tensor(self) -> Tensor:
        return torch.tensor([self.loss_sum, float(self.correct), float(self.count)], dtype=torch.float64)


def _nonfinite(what: str, *, epoch: int, step: int, x: Tensor) -> TrainingError:
    """The error of a step that met a NaN or an infinity: bad data, or a diverging run (with what to try)."""
    where = f"at epoch {epoch}, step {step + 1}"
    if not bool(torch.isfinite(x).all()):
        return TrainingError(f"{what} {where}: the input batch holds NaN or Inf values; check the data set")
    return DivergedError(
        f"{what} {where}; the weights were not updated with it, and the checkpoints keep those of the last "
        "finished epoch. Try a lower --lr, a longer warm-up, or --grad-clip"
    )


def _failed_step(e: Exception, *, epoch: int, step: int, x: Tensor, model: nn.Module) -> TrainingError:
    """A layer's FloatingPointError (a NaN its kernel cannot take), or a ValueError that non-finite weights or
    inputs explain, reported like a NaN loss; any other ValueError with the epoch and step where it happened."""
    what = f"{type(e).__name__}: {e}"
    finite = bool(torch.isfinite(x).all()) and all(bool(torch.isfinite(p).all()) for p in model.parameters())
    if isinstance(e, FloatingPointError) or not finite:
        return _nonfinite(f"a layer met NaN or Inf values ({what})", epoch=epoch, step=step, x=x)
    return TrainingError(f"the training step failed at epoch {epoch}, step {step + 1}: {what}")


@dataclass(frozen=True)
class StepRecipe:
    """How every training step of a run computes, the same in each epoch: what :func:`train_one_epoch` needs
    besides the model, its batches and the optimizer."""

    device: torch.device
    steps_per_epoch: int  # optimizer steps per epoch: a step's global index is (epoch - 1) * this + its step
    aux_weight: float = 0.0  # the model's aux_loss_weight (models with auxiliary classifiers)
    label_smoothing: float = 0.0  # 0: plain cross-entropy
    ignore_index: int = NO_IGNORE  # labels that no loss or count sees (segmentation: IGNORE_INDEX)
    channels_last: bool = False  # NHWC input (the model was moved to the same memory format)
    amp: bool = False  # bfloat16 autocast (a run's resolved precision bf16; :func:`autocast`)
    grad_clip: float | None = None  # clip the global gradient norm to this (None: no clipping)


@dataclass(frozen=True)
class StepHooks:
    """Who hears of each training step: the callbacks (after backward, before the update), a progress bar, and
    the flag that stops the loop at the step's end. ``any_rank`` makes one rank's finding every rank's decision
    (:func:`cnnlab.train.distributed.any_rank`), so that the ranks stop together, for a NaN or for ``stop``, and
    none waits for the others forever."""

    callbacks: Sequence[Callback] = ()
    progress: Any = None  # a tqdm bar (None: none)
    stop: StopFlag | None = None  # None: only an exception stops the epoch
    any_rank: Callable[[bool], bool] = bool  # bool: a single process decides alone


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, ...]],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    recipe: StepRecipe,
    *,
    epoch: int,
    totals: EpochTotals | None = None,
    hooks: StepHooks = StepHooks(),  # frozen, so sharing the default is safe
) -> EpochTotals:
    """One pass over ``batches``, which start at step ``totals.steps`` of the epoch (an interrupted epoch goes on
    where it stopped); the scheduler steps per batch. ``totals`` (filled in place) tells an interrupted caller how
    far the epoch got. A batch is (images, labels, ...): labels per image, or per pixel for segmentation (whose
    batches carry size maps too, unused here); the totals count labelled items (pixels for segmentation, so its
    accuracy is the pixel accuracy).

    A NaN or infinite loss or logits (before the backward pass), gradient norm (before the update), or a layer
    that raises on NaN input, is a TrainingError naming the epoch and step: the weights are never updated with it.
    """
    totals = totals if totals is not None else EpochTotals()
    for step, (x, y, *_) in enumerate(batches, start=totals.steps):
        x = x.to(recipe.device, non_blocking=True, memory_format=memory_format(recipe.channels_last))
        y = y.to(recipe.device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        value, logits = _forward_backward(model, x, y, recipe, epoch=epoch, step=step, any_rank=hooks.any_rank)
        if hooks.callbacks:
            global_step = (epoch - 1) * recipe.steps_per_epoch + step
            info = StepInfo(unwrap(model), epoch, step, global_step, value, hooks.stop)
            for c in hooks.callbacks:
                c.on_step(info)
        _update(model, optimizer, scheduler, recipe.grad_clip, epoch=epoch, step=step, x=x)
        totals.add(value, logits, y, ignore_index=recipe.ignore_index)
        if hooks.progress is not None:
            hooks.progress.update(1)
            hooks.progress.set_postfix(totals.running())
        if hooks.stop is not None and hooks.any_rank(hooks.stop.requested):
            raise StopRequested("stop requested")
    return totals


def _forward_backward(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    recipe: StepRecipe,
    *,
    epoch: int,
    step: int,
    any_rank: Callable[[bool], bool],
) -> tuple[float, Tensor]:
    """(the batch's loss, its main logits), the gradients in place; a TrainingError on every rank when the loss
    or the logits of any rank are not finite, before the backward pass."""
    try:
        with autocast(recipe.device, recipe.amp):
            output = model(x)
            loss, logits = classification_loss(
                output, y, label_smoothing=recipe.label_smoothing, aux_weight=recipe.aux_weight,
                ignore_index=recipe.ignore_index,
            )  # fmt: skip
        value = loss.item()
        finite = math.isfinite(value) and bool(torch.isfinite(logits.detach()).all())
        if any_rank(not finite):
            what = "another rank's loss became NaN or Inf"
            if not finite:
                what = f"the loss became {value}" if not math.isfinite(value) else "the logits became NaN or Inf"
            raise _nonfinite(what, epoch=epoch, step=step, x=x)
        loss.backward()
    except (FloatingPointError, ValueError) as e:
        if isinstance(e, CnnlabError) and not isinstance(e, FloatingPointError):
            raise  # an input the model cannot take says so itself
        raise _failed_step(e, epoch=epoch, step=step, x=x, model=model) from None
    return value, logits


def _update(
    model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, grad_clip: float | None, **where: Any
) -> None:
    """Clip the gradients (when asked) and take the optimizer's and the scheduler's step; a TrainingError naming
    ``where`` (epoch, step, x) when the gradient norm is not finite, before the weights take it."""
    params = [p for p in model.parameters() if p.grad is not None]
    norm = nn.utils.get_total_norm([p.grad for p in params])  # the same on every rank after DDP's all-reduce
    if not math.isfinite(norm.item()):
        raise _nonfinite(f"the gradient norm became {norm.item()}", **where)
    if grad_clip:
        nn.utils.clip_grads_with_norm_(params, grad_clip, norm)
    optimizer.step()
    scheduler.step()


@torch.no_grad()
def predict_batches(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    *,
    device: torch.device,
    channels_last: bool = False,
    amp: bool = False,
) -> tuple[Tensor, Tensor]:
    """(logits, labels) over all ``batches``, in eval mode, on the CPU."""
    model.eval()
    outs, labels = [], []
    for x, y, *_ in batches:
        with autocast(device, amp):
            outs.append(model(x.to(device, memory_format=memory_format(channels_last))).float().cpu())
        labels.append(y)
    if not outs:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.int64)
    return torch.cat(outs), torch.cat(labels)


def evaluate(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, device: torch.device, **kw: Any
) -> EpochTotals:
    """Summed (unsmoothed) cross-entropy and correct count over ``batches``."""
    logits, y = predict_batches(model, batches, device=device, **kw)
    if not len(y):
        return EpochTotals()
    loss = F.cross_entropy(logits, y, reduction="sum").item()
    return EpochTotals(loss, int((logits.argmax(1) == y).sum()), len(y))


@dataclass
class PixelTotals:
    """A segmentation split's sums: the cross-entropy over its labelled pixels, their confusion matrix (K x K)
    and one matrix per size bucket (B x K x K). They add over batches and ranks (:meth:`as_tensor`)."""

    loss_sum: float
    matrix: Tensor
    buckets: Tensor

    def as_tensor(self) -> Tensor:
        parts = (torch.tensor([self.loss_sum], dtype=torch.float64), self.matrix.flatten(), self.buckets.flatten())
        return torch.cat([p.double() for p in parts])  # float64: counts stay exact up to 2**53 pixels

    @classmethod
    def from_tensor(cls, t: Tensor, num_classes: int, num_buckets: int) -> PixelTotals:
        k = num_classes
        matrix = t[1 : 1 + k * k].round().long().view(k, k)
        return cls(float(t[0]), matrix, t[1 + k * k :].round().long().view(num_buckets, k, k))

    def scores(self, classes: Sequence[str], bucket_names: Sequence[str]) -> dict[str, Any]:
        """``loss`` (mean over the labelled pixels), ``acc`` (pixel accuracy), ``miou``, ``class_iou`` (by class
        name; None for a class neither labelled nor predicted) and ``<bucket>_iou`` for each size bucket."""
        s = segmentation_scores(self.matrix, dict(zip(bucket_names, self.buckets, strict=True)), classes=classes)
        out: dict[str, Any] = {
            "loss": self.loss_sum / max(1, int(self.matrix.sum())),
            "acc": s["pixel_accuracy"],
            "miou": s["mean_iou"],
            "class_iou": {c: None if math.isnan(v) else v for c, v in s["class_iou"].items()},  # type: ignore[attr-defined]
        }
        for name, v in (s.get("bucket_mean_iou") or {}).items():  # type: ignore[attr-defined]
            out[f"{name}_iou"] = None if math.isnan(v) else v  # a bucket with no pixels in this split
        return out


@torch.no_grad()
def evaluate_pixels(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, ...]],
    *,
    device: torch.device,
    num_classes: int,
    bucket_names: Sequence[str] = (),
    ignore_index: int,
    channels_last: bool = False,
    amp: bool = False,
) -> PixelTotals:
    """Summed (unsmoothed) pixel cross-entropy and the confusion matrices of (images, labels, size maps)
    batches, in eval mode, batch by batch (a split's logits per pixel would not fit in memory at once)."""
    model.eval()
    k = num_classes
    zeros = torch.zeros(1 + len(bucket_names), k, k, dtype=torch.int64)
    totals = PixelTotals(0.0, zeros[0], zeros[1:])
    for x, y, sizes in batches:
        with autocast(device, amp):
            logits = model(x.to(device, memory_format=memory_format(channels_last))).float()
        y, sizes = y.to(device), sizes.to(device)
        totals.loss_sum += F.cross_entropy(logits, y, ignore_index=ignore_index, reduction="sum").item()
        pred = logits.argmax(1)
        totals.matrix += confusion_matrix(pred, y, k, ignore_index=ignore_index).cpu()
        for b, m in enumerate(bucket_matrices(pred, y, sizes, k, bucket_names, ignore_index=ignore_index).values()):
            totals.buckets[b] += m.cpu()
    return totals


def topk_accuracy(logits: Tensor, y: Tensor, k: int) -> float:
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return float((top == y[:, None]).any(1).float().mean())


class Throughput:
    """Images per second over a span of wall time."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def rate(self, images: int) -> float:
        return images / max(1e-9, time.perf_counter() - self.start)
