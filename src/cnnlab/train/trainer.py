"""``fit(config)``: one training run from a :class:`TrainConfig` to a run folder, read top to bottom.

A run has four parts, and :func:`fit` calls them in order:

1. **Set up**: the data, the model (optionally pretrained and partly frozen), its input pipeline and loaders, the
   optimizer and its schedule (:func:`_set_up`). Whatever can be refused is refused before the data are read or a
   run folder is made, so a run refused for its inputs leaves nothing behind.
2. **Restore**: a resumed run puts its checkpoint's state back (:mod:`cnnlab.train.resume`, the one module that
   decides whether a run resumes and reads its checkpoint, once). Then rank 0 claims the run folder (created and
   locked, :mod:`cnnlab.train.runfolder`).
3. **The epochs** (:func:`_train`): per epoch, train (:func:`cnnlab.train.engine.train_one_epoch`), validate, log
   (stdout, CSV, TensorBoard) and save (``best.pt`` when the validation score improves, then ``last.pt``). Named
   steps around it: DDP's sums over the ranks, early stopping (:func:`_stops_early`), and Ctrl-C or SIGTERM
   (:func:`_stop_on_signals`), which stop at the next step boundary (the same step on every rank), or after the
   last epoch is saved, with ``last.pt`` saved there.
4. **Finish** (:func:`_finish`): the test split once, for the final and for the best weights (``results.json``).
   The test split never chooses anything.

A resumed run continues exactly: the batches a run sees depend only on (seed, rank, epoch, step), the RNG states and
each rank's totals of the interrupted epoch are restored, so N epochs straight and N/2 + resume + N/2 end with the
same weights and the same metrics. It keeps its recorded recipe (:func:`cnnlab.train.resume.check_resume`).

The task comes from the model: a ``dense_output`` model (the segmentation family) trains on a segmentation data
set (:func:`cnnlab.data.load_any`) with the same loop and the same loss function, cross-entropy per pixel with
the data's ignore index (and 0.5 times the auxiliary head's, torchvision's recipe), and is validated by mean IoU:
``best.pt`` holds the weights of the best validation mIoU (ties: the lower loss), ``metrics.csv`` adds
``val_miou``, ``val_small_iou`` and ``val_large_iou`` (``val_acc`` is the pixel accuracy), and the test results
add ``test_miou``, ``test_small_iou``, ``test_large_iou`` and ``test_class_iou``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.data import Dataset, InputPipeline, SegmentationDataset, load_any, make_loader
from cnnlab.errors import CnnlabError, ConfigError, DivergedError
from cnnlab.registry import build_model, model_entry
from cnnlab.train import distributed as D
from cnnlab.train import resume
from cnnlab.train.atomic import full_disk_is_an_error, write_atomic
from cnnlab.train.checkpoint import BEST, LAST, has_seal, load_checkpoint, rng_state, save_checkpoint
from cnnlab.train.config import TrainConfig
from cnnlab.train.engine import (
    NO_IGNORE,
    Callback,
    EpochTotals,
    GradNormRecorder,
    PixelTotals,
    StepHooks,
    StepRecipe,
    StopFlag,
    StopRequested,
    Throughput,
    block_names,
    evaluate,
    evaluate_pixels,
    memory_format,
    train_one_epoch,
)
from cnnlab.train.memory import check_fits_memory
from cnnlab.train.optim import build_optimizer, build_scheduler
from cnnlab.train.precision import resolve_precision
from cnnlab.train.resume import Progress
from cnnlab.train.runfolder import check_folder, check_run_folder, claim_run_folder, planned_folder
from cnnlab.train.runlog import EpochMetrics, RunLog
from cnnlab.train.transfer import freeze, set_train_mode
from cnnlab.train.watch import watch_for

Log = Callable[[str], None]


@dataclass(frozen=True)
class TestResult:
    """The one evaluation of a model on the test split."""

    epoch: int  # the epoch after which the evaluated weights were saved
    val_acc: float | None  # their validation accuracy (None without a validation split)
    test_loss: float
    test_acc: float  # segmentation: the pixel accuracy
    # segmentation only (None for a classifier, and left out of its results.json)
    val_miou: float | None = None
    test_miou: float | None = None
    test_small_iou: float | None = None  # mean IoU over the pixels of the small objects (mnist5k-seg's buckets)
    test_large_iou: float | None = None
    test_class_iou: dict[str, float | None] | None = None  # by class name (None: neither labelled nor predicted)

    def to_dict(self) -> dict[str, Any]:
        """What ``results.json`` holds: a classifier's four scores, a segmentation net's IoUs as well."""
        extra = ("val_miou", "test_miou", "test_small_iou", "test_large_iou", "test_class_iou")
        return {k: v for k, v in vars(self).items() if k not in extra or self.test_miou is not None}


@dataclass
class RunResult:
    """What :func:`fit` returns."""

    config: TrainConfig
    model: nn.Module  # the final model (not the best one), unwrapped, in eval mode
    history: list[EpochMetrics]
    run_dir: Path | None  # None on ranks other than 0
    classes: list[str]
    best_epoch: int | None  # the epoch of the best validation accuracy (None without a validation split)
    best_val_acc: float | None
    test: dict[str, TestResult]  # "final" and "best", evaluated once at the end ({} without a test split)
    pipeline: InputPipeline  # how the data's images became the model's input
    wall_s: float
    frozen: list[str] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def final(self) -> EpochMetrics:
        return self.history[-1]


@dataclass(frozen=True)
class Job:
    """What a run trains, on what and how: set up once, before the run folder is made."""

    config: TrainConfig
    data: Dataset | SegmentationDataset
    info: D.DistInfo  # this process's rank among world_size
    model: nn.Module  # unwrapped (no DDP, no torch.compile), on the device
    pipeline: InputPipeline  # how the data's images become the model's input
    frozen: list[str]  # the modules --freeze froze
    loader_args: dict[str, Any]  # make_loader's arguments for every split (the test loader is made at the end)
    train_loader: Any
    val_loader: Any  # None without a validation split
    optimizer: torch.optim.Optimizer
    scheduler: Any
    step: StepRecipe  # how each training step computes
    meta: dict[str, Any]  # what a checkpoint records to rebuild the model and its input (eval, predict, export)
    started: float  # time.perf_counter() at the start of the run

    @property
    def select(self) -> str:
        """The validation score that picks best.pt: the accuracy, or the mean IoU for segmentation."""
        return "val_miou" if isinstance(self.data, SegmentationDataset) else "val_acc"


@dataclass(frozen=True)
class Folder:
    """The run folder, claimed by rank 0 (every rank knows its path); ``runlog`` writes its metrics (rank 0)."""

    path: Path
    runlog: RunLog | None  # None on ranks other than 0


def fit(
    config: TrainConfig = TrainConfig(),  # noqa: B008 (frozen, so sharing the default is safe)
    *,
    data: Dataset | None = None,
    callbacks: Sequence[Callback] = (),
    log: Log = print,
    given: Collection[str] | None = None,
) -> RunResult:
    """Train as ``config`` says and return the history, the run folder, the final model and its test results.

    Each epoch is validated; ``best.pt`` holds the weights of the best validation accuracy; the test split is
    evaluated once, after training, for the final and for the best weights. Under torchrun this joins the
    process group, and only rank 0 logs and writes files. ``data`` is ``config.data`` already loaded by the
    caller (:func:`cnnlab.data.load_any`), so that a caller who needs it too loads it once. ``given``, for a
    resumed run: the fields the caller chose (``cnnlab train --resume RUN``'s flags), the others being the run's
    recorded ones; None: ``config`` is the whole recipe (:func:`cnnlab.train.resume.open_run`).
    """
    config, checkpoint = resume.open_run(config, given)  # whether the run resumes is decided here, once
    info, device = D.init_distributed(config.device)
    try:
        config = config.replace(precision=resolve_precision(config.precision, device))  # recorded as resolved
        with contextlib.ExitStack() as held:  # the run folder's lock, released however the run ends
            return _run(config, checkpoint, data, info, device, callbacks, log if info.is_main else _quiet, held)
    finally:
        D.cleanup(info)


def _run(
    config: TrainConfig,
    checkpoint: dict[str, Any] | None,
    data: Dataset | SegmentationDataset | None,
    info: D.DistInfo,
    device: torch.device,
    callbacks: Sequence[Callback],
    log: Log,
    held: contextlib.ExitStack,
) -> RunResult:
    """The run, top to bottom: set up, restore, the epochs, finish."""
    started = time.perf_counter()
    # 1. set up (what can be refused is refused before the data are read, and before the run folder is made)
    if checkpoint is None:
        _check_new_folder(config)
    else:
        resume.check_world_size(checkpoint, info.world_size)
    torch.manual_seed(config.seed)
    data = data if data is not None else load_data(config)
    job = _set_up(config, data, info, device, pretrained=checkpoint is None, log=log, started=started)

    # 2. restore a resumed run's state, then claim the run folder
    progress = Progress()
    if checkpoint is not None:
        progress = resume.restore(checkpoint, job.model, job.optimizer, job.scheduler, rank=info.rank, log=log)
    callbacks = [*callbacks, *_grad_norm_recorder(job, progress)]
    net = D.wrap(torch.compile(job.model) if config.compile else job.model, info, device)  # what the steps call
    folder = _open_folder(job, progress, held, log)
    callbacks = [*callbacks, *_watch(job, folder)]

    # 3. the epochs, and 4. finish: the test split once, the results
    stopped_early = _train(job, net, progress, folder, callbacks, log)
    return _finish(job, progress, folder, stopped_early, log)


# 1. Set up


def load_data(config: TrainConfig) -> Dataset | SegmentationDataset:
    """The data set that ``config`` trains on: its splits, and the class and size subset it asks for."""
    return load_any(
        config.data, data_dir=config.data_dir, download=config.download, val_fraction=config.val_fraction,
        classes=config.classes, train_per_class=config.train_per_class, test_copies=config.test_copies,
    )  # fmt: skip


def _check_new_folder(config: TrainConfig) -> None:
    """A new run's folder: out_dir can hold folders, and a named run's folder holds no run unless overwritten."""
    check_folder(config.out_dir, what="out_dir")
    planned = planned_folder(config)
    if planned is not None:
        check_run_folder(planned, resume=False, overwrite=config.overwrite)


def _set_up(
    config: TrainConfig,
    data: Dataset | SegmentationDataset,
    info: D.DistInfo,
    device: torch.device,
    *,
    pretrained: bool,
    log: Log,
    started: float,
) -> Job:
    """The model and its input, the loaders, the optimizer and its schedule: all that the epochs need."""
    _check_model_kwargs(config, data)
    model, pipeline, frozen = _build_model(config, data, pretrained=pretrained, log=log)
    check_fits_memory(config, data, pipeline.size, device)  # before the run folder is made
    if config.precision == "bf16":
        log("precision bf16: bfloat16 autocast (weights, optimizer state, batch-norm statistics and loss in float32)")
    model.to(device=device, memory_format=memory_format(config.channels_last))
    loader_args = dict(
        batch_size=config.batch_size, seed=config.seed, workers=config.workers, rank=info.rank,
        world_size=info.world_size, pin_memory=device.type == "cuda",
    )  # fmt: skip
    chosen = {k: v for k, v in (("rotate", config.rotate), ("scale", config.scale)) if v is not None}
    augment = config.augment and dataclasses.replace(data.augment, **chosen)  # the data set's, as the config changes it
    train_loader = make_loader(data, "train", pipeline, augment=augment, **loader_args)
    val_loader = make_loader(data, "val", pipeline, **loader_args) if data.val is not None else None
    optimizer = build_optimizer(model, config)
    step = StepRecipe(
        device=device, steps_per_epoch=len(train_loader), aux_weight=model.aux_loss_weight,
        label_smoothing=config.label_smoothing, channels_last=config.channels_last, amp=config.precision == "bf16",
        ignore_index=data.ignore_index if isinstance(data, SegmentationDataset) else NO_IGNORE,
        grad_clip=config.grad_clip,
    )  # fmt: skip
    return Job(
        config=config, data=data, info=info, model=model, pipeline=pipeline, frozen=frozen, loader_args=loader_args,
        train_loader=train_loader, val_loader=val_loader, optimizer=optimizer, step=step,
        scheduler=build_scheduler(optimizer, config, step.steps_per_epoch), meta=_meta(config, data, model, pipeline),
        started=started,
    )  # fmt: skip


def _check_model_kwargs(config: TrainConfig, data: Dataset | SegmentationDataset) -> None:
    """num_classes and in_chans are the data's, never model arguments; the model's task is the data's."""
    dense = getattr(model_entry(config.model).model_cls, "dense_output", False)
    if dense and not isinstance(data, SegmentationDataset):
        raise ConfigError(
            f"{config.model} predicts a label per pixel (segmentation) and {data.name} has one label per image; "
            "train it on a segmentation data set (mnist5k-seg, segfolder:PATH)"
        )
    if not dense and isinstance(data, SegmentationDataset):
        raise ConfigError(
            f"{data.name} has a label per pixel (segmentation) and {config.model} predicts one label per image; "
            "train a segmentation model on it (`cnnlab models` lists them: fcn_cifar_resnet20, duc_cifar_resnet20, ...)"
        )
    from_data = {"num_classes": f"{data.num_classes} classes", "in_chans": f"{data.in_chans}-channel images"}
    for key, what in from_data.items():
        if key in config.model_kwargs:
            raise ConfigError(f"{key} comes from the data ({what} of {data.name}); remove it from model_kwargs")


def _build_model(
    config: TrainConfig, data: Dataset | SegmentationDataset, *, pretrained: bool, log: Log
) -> tuple[nn.Module, InputPipeline, list[str]]:
    """The model (with ``config.pretrained``'s weights when ``pretrained``: a resumed run has its own), its input
    pipeline, and the modules ``config.freeze`` froze."""
    # from the plain data that the checkpoints store, so that eval, predict and export rebuild this very model
    kwargs = config.to_dict()["model_kwargs"]
    model = build_model(config.model, kwargs, num_classes=data.num_classes, in_chans=data.in_chans)
    pipeline = data.pipeline(
        min_size=model.min_input_size, default_size=model.default_image_size, size=config.image_size
    )
    if pretrained and config.pretrained:
        _load_pretrained(model, config.pretrained, data, log)
    frozen = freeze(model, config.freeze)
    params = list(model.parameters())
    trainable, total = sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
    fitted = {"pad": f", padded to {pipeline.size}x{pipeline.size}", "resize": f", resized to {pipeline.size}"}
    log(
        f"model {config.model}: {trainable:,} trainable of {total:,} params"
        + (f" (frozen: {', '.join(frozen)})" if frozen else "")
        + f"; data {data.name}: {data.sizes()} images, {data.num_classes} classes{fitted.get(pipeline.fit, '')}"
    )
    return model, pipeline, frozen


def _load_pretrained(model: nn.Module, source: str, data: Dataset | SegmentationDataset, log: Log) -> None:
    """Weights from a cnnlab checkpoint (once they match its checksum; a new head when it was trained on other
    classes), a state_dict file, or "torchvision"/"timm"."""
    from cnnlab.weights import load_pretrained

    weights: Any = source
    other_classes = False
    if has_seal(source):
        saved = load_checkpoint(source)
        weights, other_classes = saved["model"], saved["meta"].get("classes") != list(data.classes)
    report = load_pretrained(model, weights, new_head=other_classes)
    log(f"pretrained {source}: {report}" + (" (trained on other classes)" if other_classes else ""))


def _meta(
    config: TrainConfig, data: Dataset | SegmentationDataset, model: nn.Module, pipeline: InputPipeline
) -> dict[str, Any]:
    return {
        "model": getattr(model, "model_name", config.model),
        "model_kwargs": config.to_dict()["model_kwargs"],
        "num_classes": data.num_classes,
        "in_chans": data.in_chans,
        "image_size": pipeline.size,
        "input": pipeline.to_dict(),
        "classes": list(data.classes),
        "data": data.name,
        "data_dir": config.data_dir,
        "val_fraction": config.val_fraction,
        "subset": {"classes": config.to_dict()["classes"], "train_per_class": config.train_per_class},
    }


# 2. Restore (cnnlab.train.resume), then the run folder


def _grad_norm_recorder(job: Job, progress: Progress) -> list[Callback]:
    """The recorder of each block's gradient norm at the first and last step, when the config asks for it; its
    norms (those of a resumed run included) are ``progress.grad_norms``, which checkpoints and results.json save."""
    if not job.config.record_grad_norms:
        progress.grad_norms = None
        return []
    last_step = job.config.epochs * job.step.steps_per_epoch - 1
    recorder = GradNormRecorder(block_names(job.model), last_step, progress.grad_norms)
    progress.grad_norms = recorder.norms  # filled in place by the recorder
    return [recorder]


def _watch(job: Job, folder: Folder) -> list[Callback]:
    """Validation every ``config.val_every_steps`` updates and the zeros entering the head
    (:mod:`cnnlab.train.watch`), when the config asks for them."""
    if not job.config.val_every_steps or job.val_loader is None:
        return []
    path = folder.path if job.info.is_main else None
    validate = lambda net: _evaluate(job, net, job.val_loader)  # noqa: E731
    return [watch_for(path, job.config.val_every_steps, job.step.steps_per_epoch, validate)]


def _open_folder(job: Job, progress: Progress, held: contextlib.ExitStack, log: Log) -> Folder:
    """Claim the run folder (rank 0) and start its log: config.yaml, metrics.csv and TensorBoard."""
    path = _claim(job.config, job.info, held, log)
    if not job.info.is_main:
        return Folder(path, None)
    runlog = RunLog(path, job.config, progress.history, segmentation=isinstance(job.data, SegmentationDataset))
    log(f"run folder {path}")
    return Folder(path, runlog)


def _claim(config: TrainConfig, info: D.DistInfo, held: contextlib.ExitStack, log: Log) -> Path:
    """Rank 0 creates and locks the run folder (released when ``held`` closes); every rank gets its path, or
    rank 0's refusal (so that no rank waits for the others)."""
    outcome: Path | CnnlabError | None = None
    if info.is_main:
        auto = f"{config.model}-{config.data.split(':')[0]}-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            lock, cleared = claim_run_folder(
                planned_folder(config), out_dir=config.out_dir, auto_name=auto, resume=bool(config.resume),
                overwrite=config.overwrite,
            )  # fmt: skip
            held.enter_context(lock)
            outcome = lock.path
            if cleared:
                log(f"cleared in {lock.path}: {', '.join(cleared)}")
        except CnnlabError as e:
            outcome = e
    outcome = D.broadcast_object(outcome, info)
    if isinstance(outcome, CnnlabError):
        raise outcome
    assert outcome is not None
    return outcome


# 3. The epochs


def _train(
    job: Job, net: nn.Module, progress: Progress, folder: Folder, callbacks: Sequence[Callback], log: Log
) -> bool:
    """The epochs from where ``progress`` stands, each trained, validated, logged and saved; True when early
    stopping ended them. A stop asked for by Ctrl-C, SIGTERM or a callback ends the run before its test."""
    stop = StopFlag()
    hooks = StepHooks(callbacks, stop=stop, any_rank=lambda flag: D.any_rank(flag, job.info))
    with _stop_on_signals(stop):
        stopped_early = _stops_early(job.config, progress, log)  # a resumed run that had stopped stays stopped
        for epoch in range(progress.epoch, job.config.epochs + 1):
            if stopped_early:
                break
            m = _train_epoch(job, net, progress, folder, epoch, hooks, log)
            _record_epoch(job, progress, folder, m, log)
            for c in callbacks:
                c.on_epoch_end(epoch, m, job.model)
            stopped_early = _stops_early(job.config, progress, log)
        _stop_after_the_last_step(job, progress, folder, stop, log)
    return stopped_early


def _train_epoch(
    job: Job, net: nn.Module, progress: Progress, folder: Folder, epoch: int, hooks: StepHooks, log: Log
) -> EpochMetrics:
    """One epoch: its steps (from where an interrupted one stopped), summed over the ranks, then validation."""
    started = time.perf_counter()
    totals = progress.partial if epoch == progress.epoch else EpochTotals()
    set_train_mode(job.model, job.frozen)
    speed, seen_before = Throughput(), totals.images
    try:
        with _progress_bar(job, epoch, totals.steps) as bar:
            batches = job.train_loader.batches(epoch, totals.steps)
            hooks = dataclasses.replace(hooks, progress=bar)
            train_one_epoch(net, batches, job.optimizer, job.scheduler, job.step, epoch=epoch, totals=totals,
                            hooks=hooks)  # fmt: skip
    except DivergedError as e:  # a result of the recipe: results.json says so, for experiments to count
        _write_results(job, progress, folder, {}, stopped_early=False, status="diverged", error=str(e))
        raise
    except StopRequested:  # every rank stops after the same step (a second Ctrl-C stops at once, unsaved)
        _save_at_the_stop(job, progress, folder, epoch, totals, log)
        raise
    D.sync_buffers(job.model, job.info)
    rate = speed.rate(int(D.all_reduce(torch.tensor([totals.images - seen_before]), job.info)))
    train = D.all_reduce(totals.as_tensor(), job.info).tolist()
    val = _validate(job, epoch)
    return EpochMetrics(
        epoch=epoch,
        train_loss=train[0] / train[2],
        train_acc=train[1] / train[2],
        val_loss=val.get("loss"),
        val_acc=val.get("acc"),
        lr=job.optimizer.param_groups[0]["lr"],
        images_per_s=rate,
        epoch_s=time.perf_counter() - started,
        val_miou=val.get("miou"),
        val_small_iou=val.get("small_iou"),
        val_large_iou=val.get("large_iou"),
    )


def _validate(job: Job, epoch: int) -> dict[str, Any]:
    """The validation split's scores after ``epoch`` ({} in an epoch that eval_every skips, or without one)."""
    if job.val_loader is None or (epoch % job.config.eval_every and epoch != job.config.epochs):
        return {}
    return _evaluate(job, job.model, job.val_loader)


def _evaluate(job: Job, model: nn.Module, loader: Any) -> dict[str, Any]:
    """``loss`` and ``acc`` over a split sharded across the ranks; for segmentation also ``miou``,
    ``class_iou`` and ``<bucket>_iou`` (:meth:`PixelTotals.scores`)."""
    data, info, s = job.data, job.info, job.step
    kw = dict(device=s.device, channels_last=s.channels_last)  # float32, as `cnnlab eval` sees the weights
    if isinstance(data, SegmentationDataset):
        k, buckets = data.num_classes, data.size_buckets
        pixels = evaluate_pixels(
            model, loader.batches(), num_classes=k, bucket_names=buckets, ignore_index=data.ignore_index, **kw
        )
        total = PixelTotals.from_tensor(D.all_reduce(pixels.as_tensor(), info), k, len(buckets))
        return total.scores(data.classes, buckets)
    t = D.all_reduce(evaluate(model, loader.batches(), **kw).as_tensor(), info).tolist()
    return {"loss": t[0] / t[2], "acc": t[1] / t[2]}


def _record_epoch(job: Job, progress: Progress, folder: Folder, m: EpochMetrics, log: Log) -> None:
    """Log the epoch, keep it in the history, save best.pt when it is the best so far, then last.pt."""
    progress.history.append(m)
    recent = [h.epoch_s for h in progress.history[-3:]]  # the last epochs' pace (a resumed run's are its own)
    log(format_epoch(m, job.config.epochs, left_s=(job.config.epochs - m.epoch) * sum(recent) / len(recent)))
    if improves(m, progress.best, key=job.select):  # best.pt before last.pt: last.pt is never ahead of it
        progress.best = m
        progress.best_state = {k: v.detach().to("cpu", copy=True) for k, v in job.model.state_dict().items()}
        _save(job, progress, folder, BEST, epoch=m.epoch + 1)
    _save(job, progress, folder, LAST, epoch=m.epoch + 1)
    if folder.runlog is not None:
        folder.runlog.record(progress.history)


def _save(
    job: Job, progress: Progress, folder: Folder, name: str, *, epoch: int, step: int = 0, partial: list | None = None
) -> None:
    """Rank 0 saves where the run goes on (``epoch``, ``step``); ``partial``: each rank's totals of an interrupted
    epoch (None between epochs). :mod:`cnnlab.train.checkpoint` says what each key holds."""
    if not job.info.is_main:
        return
    ckpt = {
        "model": job.model.state_dict(),
        "optimizer": job.optimizer.state_dict(),
        "scheduler": job.scheduler.state_dict(),
        "epoch": epoch,
        "step": step,
        "partial": partial or [],
        "world_size": job.info.world_size,
        "rng": rng_state(),
        "config": job.config.to_dict(),
        "meta": job.meta,
        "history": [vars(m) for m in progress.history],
        "best": vars(progress.best) if progress.best is not None else None,
        "grad_norms": progress.grad_norms,
    }
    save_checkpoint(ckpt, folder.path / name)


def _save_at_the_stop(job: Job, progress: Progress, folder: Folder, epoch: int, totals: EpochTotals, log: Log) -> None:
    """last.pt at the step where every rank stopped, with each rank's totals of the epoch so far."""
    step = totals.steps  # counts the steps before a resume too
    partial = D.all_gather_object([*dataclasses.astuple(totals)], job.info)
    _save(job, progress, folder, LAST, epoch=epoch, step=step, partial=partial)
    D.barrier(job.info)  # no rank goes on (to a resume, say) before rank 0 has saved
    log(f"interrupted at epoch {epoch}, step {step}: saved {folder.path / LAST}; resume: --resume {folder.path}")


def _stops_early(config: TrainConfig, progress: Progress, log: Log) -> bool:
    """Early stopping: the last epoch was validated, ``config.early_stop`` validations after the best one."""
    validated = [h for h in progress.history if h.val_acc is not None]
    best = progress.best
    if not (config.early_stop and best is not None and validated[-1].epoch == progress.history[-1].epoch):
        return False
    since = sum(1 for h in validated if h.epoch > best.epoch)
    if since < config.early_stop:
        return False
    log(f"early stop: no better validation accuracy for {since} validations (best: epoch {best.epoch})")
    return True


def _stop_after_the_last_step(job: Job, progress: Progress, folder: Folder, stop: StopFlag, log: Log) -> None:
    """A stop asked for after the last step (while the last epoch was validated and saved) ends the run before
    its test, as any other stop does: last.pt is saved, and its resume tests and reports."""
    if D.any_rank(stop.requested, job.info):
        epoch = progress.history[-1].epoch if progress.history else progress.epoch - 1
        log(f"interrupted after epoch {epoch}: saved {folder.path / LAST}; resume: --resume {folder.path}")
        raise StopRequested("stop requested")


@contextlib.contextmanager
def _stop_on_signals(flag: StopFlag) -> Iterator[None]:
    """Ctrl-C and SIGTERM set ``flag`` (the loop stops at the next step boundary); a second Ctrl-C stops at once,
    without saving (a step cut in half cannot be resumed exactly; last.pt stays as it was last saved)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if flag.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _progress_bar(job: Job, epoch: int, initial: int) -> Any:
    """The epoch's progress bar on stderr (rank 0, when ``config.progress``), from step ``initial``; only on a
    terminal: a log file gets the epoch lines, not the bar's carriage-return frames."""
    from tqdm import tqdm

    shown = job.config.progress and job.info.is_main and sys.stderr.isatty()
    return tqdm(
        total=job.step.steps_per_epoch, initial=initial, desc=f"epoch {epoch}/{job.config.epochs}", leave=False,
        disable=not shown, file=sys.stderr,
    )  # fmt: skip


def format_duration(seconds: float) -> str:
    """``45 s``, ``3.5 min``, ``12 min``, ``2.3 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min" if seconds < 600 else f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_epoch(m: EpochMetrics, epochs: int, *, left_s: float | None = None) -> str:
    """The epoch's line of the log; ``left_s``: the run's time left, said after every epoch but the last."""
    val = f"val loss {m.val_loss:.4f} acc {m.val_acc:.4f}" if m.val_acc is not None else "val -"
    if m.val_miou is not None:
        val += f" mIoU {m.val_miou:.4f}" + "".join(
            f" {name} {v:.4f}" for name, v in (("small", m.val_small_iou), ("large", m.val_large_iou)) if v is not None
        )
    left = f"  about {format_duration(left_s)} left" if left_s is not None and m.epoch < epochs else ""
    return (
        f"epoch {m.epoch:>3}/{epochs}  train loss {m.train_loss:.4f} acc {m.train_acc:.4f}  {val}  "
        f"lr {m.lr:.4g}  {m.images_per_s:,.0f} img/s  {m.epoch_s:.1f} s{left}"
    )


def improves(m: EpochMetrics, best: EpochMetrics | None, *, key: str = "val_acc") -> bool:
    """A higher validation score ``key`` (accuracy; ``val_miou`` for segmentation), or the same with a lower
    validation loss: the rule that picks ``best.pt``."""
    score = getattr(m, key)
    if score is None or m.val_loss is None:
        return False
    if best is None or getattr(best, key) is None or best.val_loss is None:
        return True
    return score > getattr(best, key) or (score == getattr(best, key) and m.val_loss < best.val_loss)


# 4. Finish


def _finish(job: Job, progress: Progress, folder: Folder, stopped_early: bool, log: Log) -> RunResult:
    """The test split once, the curves and results.json, and what :func:`fit` returns."""
    D.check_replicas_identical(job.model, job.info)
    if job.info.enabled:
        log(f"weights identical on all {job.info.world_size} ranks")
    test = _test_once(job, progress, log)
    wall = time.perf_counter() - job.started
    if folder.runlog is not None:
        folder.runlog.close()
        from cnnlab.train.plots import plot_curves

        with full_disk_is_an_error(folder.path, "curves.png"):
            plot_curves(progress.history, folder.path / "curves.png")
        _write_results(job, progress, folder, test, stopped_early=stopped_early, wall_s=wall)
    D.barrier(job.info)  # every rank returns once the run folder is complete
    log(f"done in {wall:.1f} s; {folder.path}")
    best = progress.best
    return RunResult(
        config=job.config,
        model=job.model.eval(),
        history=progress.history,
        run_dir=folder.path if job.info.is_main else None,
        classes=job.data.classes,
        best_epoch=best.epoch if best else None,
        best_val_acc=best.val_acc if best else None,
        test=test,
        pipeline=job.pipeline,
        wall_s=wall,
        frozen=job.frozen,
        stopped_early=stopped_early,
    )


def _test_once(job: Job, progress: Progress, log: Log) -> dict[str, TestResult]:
    """The test split, touched once: the final weights and the best-on-validation weights."""
    data = job.data
    if data.test is None:
        log(f"no test split in {data.name}: the model was not tested (validation only)")
        return {}
    loader = make_loader(data, "test", job.pipeline, **job.loader_args)

    def tested(net: nn.Module, m: EpochMetrics) -> TestResult:
        t = _evaluate(job, net, loader)
        if "miou" not in t:
            return TestResult(m.epoch, m.val_acc, t["loss"], t["acc"])
        return TestResult(
            m.epoch, m.val_acc, t["loss"], t["acc"], val_miou=m.val_miou, test_miou=t["miou"],
            test_small_iou=t.get("small_iou"), test_large_iou=t.get("large_iou"), test_class_iou=t["class_iou"],
        )  # fmt: skip

    last, best = progress.history[-1], progress.best
    test = {"final": tested(job.model, last)}
    if best is not None and progress.best_state is not None:
        if best.epoch == last.epoch:
            test["best"] = test["final"]
        else:
            best_model = copy.deepcopy(job.model)
            best_model.load_state_dict(progress.best_state)
            test["best"] = tested(best_model, best)
    lines = [f"test ({len(data.test):,} images, evaluated once):", _describe("final", test["final"])]
    if "best" in test:
        lines.append(_describe("best ", test["best"]))
    log("\n  ".join(lines))
    return test


def _describe(label: str, t: TestResult) -> str:
    val = f", val acc {t.val_acc:.4f}" if t.val_acc is not None else ""
    if t.test_miou is None:
        return f"{label} (epoch {t.epoch}{val}): test acc {t.test_acc:.4f}, loss {t.test_loss:.4f}"
    if t.val_miou is not None:
        val = f", val mIoU {t.val_miou:.4f}"
    by_size = (("small", t.test_small_iou), ("large", t.test_large_iou))
    sizes = "".join(f", {n} {v:.4f}" for n, v in by_size if v is not None)
    return (
        f"{label} (epoch {t.epoch}{val}): test mIoU {t.test_miou:.4f}{sizes}, pixel acc {t.test_acc:.4f}, "
        f"loss {t.test_loss:.4f}"
    )


def _write_results(
    job: Job,
    progress: Progress,
    folder: Folder,
    test: dict[str, TestResult],
    *,
    stopped_early: bool,
    wall_s: float | None = None,
    status: str = "ok",
    error: str | None = None,
) -> None:
    """``results.json`` (rank 0): the split sizes, the best epoch on validation, the test results, and the wall
    time (default: until now); ``status`` "diverged" (with the ``error``) for a run whose loss became NaN, and the
    per-block gradient norms when they were recorded; for segmentation, the best and final validation mIoU too.
    A run folder with this file holds a finished run."""
    import json

    if not job.info.is_main:
        return
    data, history, best = job.data, progress.history, progress.best
    payload = {
        "status": status,
        "error": error,
        "model": job.config.model,
        "data": data.name,
        "splits": {n: len(p) for n, p in (("train", data.train), ("val", data.val), ("test", data.test)) if p},
        "epochs_run": len(history) and history[-1].epoch,
        "steps_per_epoch": job.step.steps_per_epoch,  # optimizer steps per epoch on this rank
        "stopped_early": stopped_early,
        "best_epoch": best.epoch if best else None,
        "best_val_acc": best.val_acc if best else None,
        "final_val_acc": history[-1].val_acc if history else None,
        "test": {k: t.to_dict() for k, t in test.items()},
        "wall_s": wall_s if wall_s is not None else time.perf_counter() - job.started,
        "grad_norms": progress.grad_norms or None,
    }
    if isinstance(data, SegmentationDataset):  # what the best epoch is the best of
        payload["best_val_miou"] = best.val_miou if best else None
        payload["final_val_miou"] = history[-1].val_miou if history else None
    write_atomic(folder.path / "results.json", json.dumps(payload, indent=2).encode())


def _quiet(_line: str) -> None:
    """The log of ranks other than 0."""
