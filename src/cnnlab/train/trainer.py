"""``fit(config)``: one training run from a :class:`TrainConfig` to a run folder, top to bottom.

Data, model (optionally pretrained and partly frozen), optimizer and schedule; then per epoch: train, validate,
log (stdout, CSV, TensorBoard), checkpoint (``last.pt`` every epoch, ``best.pt`` when the validation accuracy
improves); at the end, the test split once, for the final and for the best weights (``results.json``). The test
split never chooses anything. Ctrl-C or SIGTERM saves ``last.pt`` at the next step boundary (the same step on
every rank) before the process exits, and ``resume=RUN`` continues from it: the batches a run sees depend only on
(seed, rank, epoch, step), the RNG states and each rank's totals of the interrupted epoch are restored, so N epochs
straight and N/2 + resume + N/2 end with the same weights and the same metrics. A resumed run keeps its recorded
recipe (:func:`cnnlab.train.config.check_resume`).

The run folder is checked before the data are read and claimed (created and locked, :mod:`cnnlab.train.runfolder`)
once the model and its input are known to fit, so a run refused for its inputs leaves nothing behind.

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.data import Dataset, InputPipeline, SegmentationDataset, load_any, make_loader
from cnnlab.errors import CnnlabError, ConfigError, DivergedError, TrainingError
from cnnlab.registry import build_model, model_entry
from cnnlab.train import distributed as D
from cnnlab.train.atomic import full_disk_is_an_error, write_atomic
from cnnlab.train.checkpoint import (
    BEST,
    LAST,
    has_seal,
    load_checkpoint,
    load_model_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from cnnlab.train.config import TrainConfig, check_resume, recorded_config
from cnnlab.train.engine import (
    NO_IGNORE,
    Callback,
    EpochTotals,
    GradNormRecorder,
    PixelTotals,
    StopFlag,
    StopRequested,
    Throughput,
    block_names,
    evaluate,
    evaluate_pixels,
    train_one_epoch,
)
from cnnlab.train.optim import build_optimizer, build_scheduler
from cnnlab.train.precision import resolve_precision
from cnnlab.train.runfolder import check_folder, check_run_folder, claim_run_folder, resolve_resume
from cnnlab.train.runlog import EpochMetrics, RunLog
from cnnlab.train.transfer import freeze, set_train_mode


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


def _planned_folder(config: TrainConfig) -> Path | None:
    """The folder the run will write: the resumed one, ``out_dir/run_name``, or None (a new name, made later)."""
    if config.resume:
        path = Path(config.resume)
        return path if path.is_dir() else path.parent
    return Path(config.out_dir) / config.run_name if config.run_name else None


def _check_inputs(config: TrainConfig, state: dict[str, Any] | None, info: D.DistInfo) -> None:
    """What can be refused before the data are read: the run folder, and a resumed run's recipe."""
    if state is None:
        check_folder(config.out_dir, what="out_dir")
        planned = _planned_folder(config)
        if planned is not None:
            check_run_folder(planned, resume=False, overwrite=config.overwrite)
        return
    run = str(_planned_folder(config))
    check_resume(recorded_config(state["config"]), config, run=run, epochs_done=state["epoch"] - 1)
    if state["world_size"] != info.world_size:
        raise ConfigError(
            f"{run} was trained by {state['world_size']} process(es) and this run has {info.world_size}: each "
            f"process's batches and the global batch depend on it; resume with torchrun --nproc-per-node "
            f"{state['world_size']} (or without torchrun for 1)"
        )


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


def _claim(config: TrainConfig, info: D.DistInfo, held: contextlib.ExitStack, log: Callable[[str], None]) -> Path:
    """Rank 0 creates and locks the run folder (released when ``held`` closes); every rank gets its path, or
    rank 0's refusal (so that no rank waits for the others)."""
    outcome: Path | CnnlabError | None = None
    if info.is_main:
        auto = f"{config.model}-{config.data.split(':')[0]}-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            lock, cleared = claim_run_folder(
                _planned_folder(config), out_dir=config.out_dir, auto_name=auto, resume=bool(config.resume),
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


def load_data(config: TrainConfig) -> Dataset | SegmentationDataset:
    """The data set that ``config`` trains on: its splits, and the class and size subset it asks for."""
    return load_any(
        config.data, data_dir=config.data_dir, download=config.download, val_fraction=config.val_fraction,
        classes=config.classes, train_per_class=config.train_per_class,
    )  # fmt: skip


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


def _progress(total: int, initial: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=False, disable=not enabled, file=sys.stderr)


def format_epoch(m: EpochMetrics, epochs: int) -> str:
    val = f"val loss {m.val_loss:.4f} acc {m.val_acc:.4f}" if m.val_acc is not None else "val -"
    if m.val_miou is not None:
        val += f" mIoU {m.val_miou:.4f}" + "".join(
            f" {name} {v:.4f}" for name, v in (("small", m.val_small_iou), ("large", m.val_large_iou)) if v is not None
        )
    return (
        f"epoch {m.epoch:>3}/{epochs}  train loss {m.train_loss:.4f} acc {m.train_acc:.4f}  {val}  "
        f"lr {m.lr:.4g}  {m.images_per_s:,.0f} img/s  {m.epoch_s:.1f} s"
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


def fit(
    config: TrainConfig = TrainConfig(),  # noqa: B008 (frozen, so sharing the default is safe)
    *,
    data: Dataset | None = None,
    callbacks: Sequence[Callback] = (),
    log: Callable[[str], None] = print,
) -> RunResult:
    """Train as ``config`` says and return the history, the run folder, the final model and its test results.

    Each epoch is validated; ``best.pt`` holds the weights of the best validation accuracy; the test split is
    evaluated once, after training, for the final and for the best weights. Under torchrun this joins the
    process group, and only rank 0 logs and writes files. ``data`` is ``config.data`` already loaded by the
    caller (:func:`cnnlab.data.load_any`), so that a caller who needs it too loads it once.
    """
    config = resolve_resume(config)  # --resume auto: continue the named run if it has a checkpoint, else start it
    info, device = D.init_distributed(config.device)
    try:
        config = config.replace(precision=resolve_precision(config.precision, device))  # recorded as resolved
        with contextlib.ExitStack() as held:  # the run folder's lock, released however the run ends
            return _fit(config, data, info, device, callbacks, log if info.is_main else (lambda _s: None), held)
    finally:
        D.cleanup(info)


def _evaluate(
    model: nn.Module, loader: Any, data: Dataset | SegmentationDataset, info: D.DistInfo, **kw: Any
) -> dict[str, Any]:
    """``loss`` and ``acc`` over a split sharded across the ranks; for segmentation also ``miou``,
    ``class_iou`` and ``<bucket>_iou`` (:meth:`PixelTotals.scores`)."""
    if isinstance(data, SegmentationDataset):
        k, buckets = data.num_classes, data.size_buckets
        pixels = evaluate_pixels(
            model, loader.batches(), num_classes=k, bucket_names=buckets, ignore_index=data.ignore_index, **kw
        )
        total = PixelTotals.from_tensor(D.all_reduce(pixels.as_tensor(), info), k, len(buckets))
        return total.scores(data.classes, buckets)
    t = D.all_reduce(evaluate(model, loader.batches(), **kw).as_tensor(), info).tolist()
    return {"loss": t[0] / t[2], "acc": t[1] / t[2]}


def _fit(
    config: TrainConfig,
    data: Dataset | None,
    info: D.DistInfo,
    device: torch.device,
    callbacks: Sequence[Callback],
    log: Callable[[str], None],
    held: contextlib.ExitStack,
) -> RunResult:
    t0 = time.perf_counter()
    state = load_checkpoint(config.resume) if config.resume else None
    _check_inputs(config, state, info)
    torch.manual_seed(config.seed)
    if data is None:
        data = load_data(config)
    _check_model_kwargs(config, data)
    segmentation = isinstance(data, SegmentationDataset)
    select = "val_miou" if segmentation else "val_acc"  # what best.pt is the best of
    # from the plain data that the checkpoints store, so that eval, predict and export rebuild this very model
    kwargs = config.to_dict()["model_kwargs"]
    model = build_model(config.model, kwargs, num_classes=data.num_classes, in_chans=data.in_chans)
    pipeline = data.pipeline(
        min_size=model.min_input_size, default_size=model.default_image_size, size=config.image_size
    )
    if config.pretrained and state is None:  # a resumed run has its own weights (check_resume)
        from cnnlab.weights import load_pretrained

        source: Any = config.pretrained
        other_classes = False
        if has_seal(source):  # a cnnlab checkpoint: its weights are used once they match its checksum
            saved = load_checkpoint(source)
            source, other_classes = saved["model"], saved["meta"].get("classes") != list(data.classes)
        report = load_pretrained(model, source, new_head=other_classes)
        log(f"pretrained {config.pretrained}: {report}" + (" (trained on other classes)" if other_classes else ""))
    frozen = freeze(model, config.freeze)
    params = list(model.parameters())
    trainable, total = sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
    fitted = {"pad": f", padded to {pipeline.size}x{pipeline.size}", "resize": f", resized to {pipeline.size}"}
    log(
        f"model {config.model}: {trainable:,} trainable of {total:,} params"
        + (f" (frozen: {', '.join(frozen)})" if frozen else "")
        + f"; data {data.name}: {data.sizes()} images, {data.num_classes} classes{fitted.get(pipeline.fit, '')}"
    )
    if config.precision == "bf16":
        log("precision bf16: bfloat16 autocast (weights, optimizer state, batch-norm statistics and loss in float32)")
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)

    loader_args = dict(
        batch_size=config.batch_size, seed=config.seed, workers=config.workers, rank=info.rank,
        world_size=info.world_size, pin_memory=device.type == "cuda",
    )  # fmt: skip
    chosen = {k: v for k, v in (("rotate", config.rotate), ("scale", config.scale)) if v is not None}
    augment = config.augment and dataclasses.replace(data.augment, **chosen)  # the data set's, as the config changes it
    train_loader = make_loader(data, "train", pipeline, augment=augment, **loader_args)
    val_loader = make_loader(data, "val", pipeline, **loader_args) if data.val is not None else None
    steps_per_epoch = len(train_loader)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)

    history: list[EpochMetrics] = []
    best: EpochMetrics | None = None
    best_state: dict[str, torch.Tensor] | None = None
    recorder = None
    if config.record_grad_norms:
        recorded = state.get("grad_norms") if state is not None else None
        recorder = GradNormRecorder(block_names(model), config.epochs * steps_per_epoch - 1, recorded)
        callbacks = [*callbacks, recorder]
    start_epoch, start_step, partial = 1, 0, EpochTotals()
    if state is not None:
        load_model_state(model, state)
        try:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError) as e:
            raise TrainingError(
                f"the optimizer state in {state['path']} does not fit (was --freeze changed?): {e}"
            ) from e
        set_rng_state(state["rng"])
        start_epoch, start_step = state["epoch"], state["step"]
        partial = EpochTotals(*state["partial"][info.rank]) if state["partial"] else EpochTotals()
        history = [EpochMetrics(**m) for m in state["history"]]
        best = EpochMetrics(**state["best"]) if state.get("best") else None
        if best is not None:
            best_state = load_checkpoint(Path(state["path"]).parent / BEST)["model"]
        log(f"resumed from {state['path']} at epoch {start_epoch}, step {start_step}")

    run_model = D.wrap(torch.compile(model) if config.compile else model, info, device)
    run_dir = _claim(config, info, held, log)
    runlog = RunLog(run_dir, config, history, segmentation=segmentation) if info.is_main else None
    meta = _meta(config, data, model, pipeline)

    def checkpoint(epoch: int, step: int, partial: list[list[float]], name: str = LAST) -> None:
        """Save where the run goes on; ``partial``: each rank's totals of an interrupted epoch ([] between epochs)."""
        if info.is_main:
            ckpt = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "step": step,
                "partial": partial,
                "world_size": info.world_size,
                "rng": rng_state(),
                "config": config.to_dict(),
                "meta": meta,
                "history": [vars(m) for m in history],
                "best": vars(best) if best is not None else None,
                "grad_norms": recorder.norms if recorder is not None else None,
            }
            save_checkpoint(ckpt, run_dir / name)

    if info.is_main:
        log(f"run folder {run_dir}")
    eval_kw = dict(device=device, channels_last=config.channels_last)  # float32, as `cnnlab eval` sees the weights
    stop = StopFlag()
    stopped_early = False
    with _stop_on_signals(stop):
        for epoch in range(start_epoch, config.epochs + 1):
            t_epoch = time.perf_counter()
            totals = partial if epoch == start_epoch else EpochTotals()
            first = start_step if epoch == start_epoch else 0
            set_train_mode(model, frozen)
            bar = _progress(steps_per_epoch, first, f"epoch {epoch}/{config.epochs}", config.progress and info.is_main)
            speed, seen_before = Throughput(), totals.images
            try:
                train_one_epoch(
                    run_model,
                    train_loader.batches(epoch, first),
                    optimizer,
                    scheduler,
                    device=device,
                    epoch=epoch,
                    start_step=first,
                    label_smoothing=config.label_smoothing,
                    aux_weight=model.aux_loss_weight,
                    ignore_index=data.ignore_index if segmentation else NO_IGNORE,
                    channels_last=config.channels_last,
                    amp=config.precision == "bf16",
                    grad_clip=config.grad_clip,
                    steps_per_epoch=steps_per_epoch,
                    on_step=(lambda s: [c.on_step(s) for c in callbacks]) if callbacks else None,
                    progress=bar,
                    totals=totals,
                    stop=stop,
                    any_rank=lambda flag: D.any_rank(flag, info),
                )
            except DivergedError as e:  # a result of the recipe: results.json says so, for experiments to count
                bar.close()
                if info.is_main:
                    wall = time.perf_counter() - t0
                    norms = recorder and recorder.norms
                    path = run_dir / "results.json"
                    _write_results(path, config, data, history, best, {}, wall, False, status="diverged", error=str(e),
                                   grad_norms=norms, steps_per_epoch=steps_per_epoch)  # fmt: skip
                raise
            except StopRequested:  # every rank stops after the same step (a second Ctrl-C stops at once, unsaved)
                bar.close()
                step = totals.steps  # counts the steps before a resume too
                checkpoint(epoch, step, D.all_gather_object([*dataclasses.astuple(totals)], info))
                D.barrier(info)  # no rank goes on (to a resume, say) before rank 0 has saved
                log(f"interrupted at epoch {epoch}, step {step}: saved {run_dir / LAST}; resume: --resume {run_dir}")
                raise
            bar.close()
            D.sync_buffers(model, info)
            rate = speed.rate(int(D.all_reduce(torch.tensor([totals.images - seen_before]), info)))
            train = D.all_reduce(totals.as_tensor(), info).tolist()
            val: dict[str, Any] = {}
            if val_loader is not None and (epoch % config.eval_every == 0 or epoch == config.epochs):
                val = _evaluate(model, val_loader, data, info, **eval_kw)
            m = EpochMetrics(
                epoch=epoch,
                train_loss=train[0] / train[2],
                train_acc=train[1] / train[2],
                val_loss=val.get("loss"),
                val_acc=val.get("acc"),
                lr=optimizer.param_groups[0]["lr"],
                images_per_s=rate,
                epoch_s=time.perf_counter() - t_epoch,
                val_miou=val.get("miou"),
                val_small_iou=val.get("small_iou"),
                val_large_iou=val.get("large_iou"),
            )
            history.append(m)
            log(format_epoch(m, config.epochs))
            improved = improves(m, best, key=select)
            if improved:  # best.pt before last.pt: the last.pt that names an epoch the best is never ahead of it
                best = m
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                checkpoint(epoch + 1, 0, [], BEST)
            checkpoint(epoch + 1, 0, [])
            if runlog is not None:
                runlog.record(history)
            for c in callbacks:
                c.on_epoch_end(epoch, m, model)
            validated = [h for h in history if h.val_acc is not None]
            if config.early_stop and best is not None and validated[-1].epoch == epoch:
                since = sum(1 for h in validated if h.epoch > best.epoch)
                if since >= config.early_stop:
                    log(f"early stop: no better validation accuracy for {since} validations (best: epoch {best.epoch})")
                    stopped_early = True
                    break

    D.check_replicas_identical(model, info)
    if info.enabled:
        log(f"weights identical on all {info.world_size} ranks")
    test = _test_once(model, best, best_state, history[-1], data, pipeline, info, loader_args, eval_kw, log)
    wall = time.perf_counter() - t0
    if runlog is not None:
        runlog.close()
        from cnnlab.train.plots import plot_curves

        with full_disk_is_an_error(run_dir, "curves.png"):
            plot_curves(history, run_dir / "curves.png")
        _write_results(run_dir / "results.json", config, data, history, best, test, wall, stopped_early,
                       grad_norms=recorder and recorder.norms, steps_per_epoch=steps_per_epoch)  # fmt: skip
    D.barrier(info)  # every rank returns once the run folder is complete
    log(f"done in {wall:.1f} s; {run_dir}")
    return RunResult(
        config=config,
        model=model.eval(),
        history=history,
        run_dir=run_dir if info.is_main else None,
        classes=data.classes,
        best_epoch=best.epoch if best else None,
        best_val_acc=best.val_acc if best else None,
        test=test,
        pipeline=pipeline,
        wall_s=wall,
        frozen=frozen,
        stopped_early=stopped_early,
    )


def _test_once(
    model: nn.Module,
    best: EpochMetrics | None,
    best_state: dict[str, torch.Tensor] | None,
    last: EpochMetrics,
    data: Dataset | SegmentationDataset,
    pipeline: InputPipeline,
    info: D.DistInfo,
    loader_args: dict[str, Any],
    eval_kw: dict[str, Any],
    log: Callable[[str], None],
) -> dict[str, TestResult]:
    """The test split, touched once: the final weights and the best-on-validation weights."""
    if data.test is None:
        log(f"no test split in {data.name}: the model was not tested (validation only)")
        return {}
    loader = make_loader(data, "test", pipeline, **loader_args)

    def tested(net: nn.Module, m: EpochMetrics) -> TestResult:
        t = _evaluate(net, loader, data, info, **eval_kw)
        if "miou" not in t:
            return TestResult(m.epoch, m.val_acc, t["loss"], t["acc"])
        return TestResult(
            m.epoch, m.val_acc, t["loss"], t["acc"], val_miou=m.val_miou, test_miou=t["miou"],
            test_small_iou=t.get("small_iou"), test_large_iou=t.get("large_iou"), test_class_iou=t["class_iou"],
        )  # fmt: skip

    test = {"final": tested(model, last)}
    if best is not None and best_state is not None:
        if best.epoch == last.epoch:
            test["best"] = test["final"]
        else:
            best_model = copy.deepcopy(model)
            best_model.load_state_dict(best_state)
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
    path: Path,
    config: TrainConfig,
    data: Dataset | SegmentationDataset,
    history: list[EpochMetrics],
    best: EpochMetrics | None,
    test: dict[str, TestResult],
    wall_s: float,
    stopped_early: bool,
    *,
    status: str = "ok",
    error: str | None = None,
    grad_norms: dict[str, dict[str, float]] | None = None,
    steps_per_epoch: int | None = None,
) -> None:
    """``results.json``: the split sizes, the best epoch on validation, the test results, and the wall time;
    ``status`` "diverged" (with the ``error``) for a run whose loss became NaN, and the per-block gradient norms
    when they were recorded; for segmentation, the best and final validation mIoU too. A run folder with this
    file holds a finished run."""
    import json

    payload = {
        "status": status,
        "error": error,
        "model": config.model,
        "data": data.name,
        "splits": {n: len(p) for n, p in (("train", data.train), ("val", data.val), ("test", data.test)) if p},
        "epochs_run": len(history) and history[-1].epoch,
        "steps_per_epoch": steps_per_epoch,  # optimizer steps per epoch on this rank (what an epoch count means)
        "stopped_early": stopped_early,
        "best_epoch": best.epoch if best else None,
        "best_val_acc": best.val_acc if best else None,
        "final_val_acc": history[-1].val_acc if history else None,
        "test": {k: t.to_dict() for k, t in test.items()},
        "wall_s": wall_s,
        "grad_norms": grad_norms or None,
    }
    if isinstance(data, SegmentationDataset):  # what the best epoch is the best of
        payload["best_val_miou"] = best.val_miou if best else None
        payload["final_val_miou"] = history[-1].val_miou if history else None
    write_atomic(path, json.dumps(payload, indent=2).encode())
