"""The benchmark's report: :func:`run_bench` gathers every measurement as a JSON-ready dict, and
:func:`format_report` prints it as aligned text tables."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import torch

from cnnlab.analysis.report import format_table
from cnnlab.bench.analysis import bench_analysis
from cnnlab.bench.config import BenchConfig
from cnnlab.bench.int8 import bench_int8_runs
from cnnlab.bench.peers import PATHS, attempt, bench_model, bench_optimized
from cnnlab.bench.precision import TRAINING_CASES, bench_main_job_precision, bench_training_precision
from cnnlab.bench.timing import BLAS_OVERRIDES, matmul_peaks
from cnnlab.bench.training import bench_training_loop
from cnnlab.machine import machine_info
from cnnlab.train import TrainConfig
from cnnlab.train.precision import resolve_precision


def run_bench(cfg: BenchConfig, *, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Every measurement of ``cfg`` in this process, as a JSON-ready dict."""
    report: dict[str, Any] = {"machine": machine_info(), "config": asdict(cfg)}
    first_peak = matmul_peaks(cfg.peak_matmul_n)
    log("float32 matmul: " + ", ".join(f"{k} {_num(v)} GFLOP/s" for k, v in first_peak.items()))
    runs = []
    for run in range(cfg.parity_runs):  # whole runs, one after the other: a slow minute falls on one run only
        rows = []
        for name in cfg.models:
            log(f"{name} (run {run + 1} of {cfg.parity_runs}) ...")
            ort = run == 0  # onnxruntime's rows once, in the first run
            rows.append(attempt(name, lambda name=name, ort=ort: bench_model(name, cfg, onnxruntime=ort)))
        runs.append(rows)
    report["parity_runs"] = runs
    report["models"] = summarize_runs(runs)
    log(f"optimize_for_inference on {cfg.optimize_model} ...")
    report["optimized"] = attempt(cfg.optimize_model, lambda: bench_optimized(cfg))
    log("training loop ...")
    report["training_loop"] = bench_training_loop(cfg)
    if cfg.precision_training:
        log("training in float32 and bfloat16 ...")
    report["training_precision"] = (
        bench_training_precision(TRAINING_CASES, repeats=cfg.precision_repeats, compiled=cfg.compile_training)
        if cfg.precision_training
        else None
    )
    with tempfile.TemporaryDirectory() as runs:  # the trained models of the int8 comparison live here
        main_run = None
        report["main_job_precision"] = None
        if cfg.precision_seeds:
            log(f"the main job in float32 and bfloat16, seeds {list(cfg.precision_seeds)} ...")
            report["main_job_precision"], results = bench_main_job_precision(cfg.precision_seeds, out_dir=runs)
            default = resolve_precision(TrainConfig().precision, torch.device("cpu"))
            main_run = results[default, cfg.precision_seeds[0]].run_dir if results else None
        if cfg.int8:
            log("int8 inference of trained models ...")
        report["int8"] = bench_int8_runs(runs, main_run=main_run) if cfg.int8 else None
    if cfg.analysis:
        log("analyzer ...")
    report["analysis"] = bench_analysis() if cfg.analysis else None
    # measured at the start and the end: on a shared machine one of them may fall on a busy moment
    samples = [first_peak, matmul_peaks(cfg.peak_matmul_n)]
    report["peak_matmul_samples"] = samples
    by_source = {k: max((s[k] for s in samples if s[k] is not None), default=None) for k in first_peak}
    report["peak_matmul_by_source"] = by_source
    report["peak_matmul_source"] = max((k for k, v in by_source.items() if v is not None), key=by_source.__getitem__)
    report["peak_matmul_gflops"] = by_source[report["peak_matmul_source"]]
    if report["optimized"]["status"] == "ok":
        for path in report["optimized"]["paths"].values():
            path["fraction_of_peak"] = path["gflops"] / report["peak_matmul_gflops"]
    return report


MEASURES = ("latency_b1", "throughput", "train_step")
"""The per-model comparisons of :func:`cnnlab.bench.peers.bench_model`."""

PARITY = 0.97
"""Eager parity: each measure of each model at least this fraction of the peer's speed, as the median of the
runs."""


def summarize_runs(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each model's row over the runs: the first run's row with each measure's median seconds per image (ours and
    the peer's), the median of the runs' ratios (each run's ratio is of interleaved timings) and every run's
    ratio (``ratios``); a model that failed in any run keeps that run's status."""
    summary = []
    for rows in zip(*runs, strict=True):
        failed = next((r for r in rows if r["status"] != "ok"), None)
        if failed is not None:
            summary.append(failed)
            continue
        row = dict(rows[0])
        for key in MEASURES:
            ok = [r[key] for r in rows if "error" not in r[key]]
            if len(ok) < len(rows):
                row[key] = next(r[key] for r in rows if "error" in r[key])
                continue
            row[key] = {
                "ours_s": statistics.median(c["ours_s"] for c in ok),
                "theirs_s": statistics.median(c["theirs_s"] for c in ok),
                "ratio": statistics.median(c["ratio"] for c in ok),
                "ratios": [c["ratio"] for c in ok],
            }
        ours_s = row["throughput"].get("ours_s")
        row["gflops_ours"] = None if ours_s is None else row["gflop_per_image"] / ours_s
        summary.append(row)
    return summary


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
    runs = report["parity_runs"]
    if len(runs) > 1:
        for k, run in enumerate(runs, start=1):
            lines += [f"run {k} of {len(runs)}", _format_models(run), ""]
        lines.append(f"median of the {len(runs)} runs; ratio: the median of the runs' ratios (lowest-highest)")
    lines.append(_format_models(report["models"]))
    lines += [
        f"{r['name']} {key}: {r[key]['error']}"
        for r in report["models"]
        for key in MEASURES
        if r["status"] == "ok" and "error" in r[key]
    ]
    below = [
        f"{r['name']} {key} {r[key]['ratio']:.3f}"
        for r in report["models"]
        for key in MEASURES
        if r["status"] == "ok" and "error" not in r[key] and r[key]["ratio"] < PARITY
    ]
    lines.append(f"below {PARITY} of the peer: " + (", ".join(below) if below else "none"))
    lines += _format_onnxruntime(report["models"])
    lines += ["", _format_peak(report)]
    o = report["optimized"]
    lines.append("")
    if o["status"] == "ok":
        lines += _format_optimized(o, report["peak_matmul_gflops"])
    else:
        lines.append(f"optimize_for_inference({o['name']}): {o['status']}")
    t = report["training_loop"]
    lines.append(
        f"training on {t['images']:,} mnist5k images ({t['model']}, batch {t['batch']}): hand-written loop "
        f"{t['minimal_loop']['images_per_s']:,.1f} img/s; cnnlab.train.fit {t['trainer_images_per_s']:,.1f} img/s, "
        f"ratio {t['trainer_ratio']:.3f}"
    )
    jobs = t["main_job"]
    if jobs is not None:
        for label, job in (("main job (cnnlab train)", jobs["current"]), ("previous main job", jobs["previous"])):
            reached = "never" if job["seconds_to_98"] is None else f"{job['seconds_to_98']:.1f} s"
            lines.append(
                f"{label}: {job['model']}, {job['epochs']} epochs; test accuracy (evaluated once) "
                f"{job['best_test_acc']:.2%} for the best validation epoch ({job['best_epoch']}, "
                f"{job['best_val_acc']:.2%} on validation), {job['final_test_acc']:.2%} final; done after "
                f"{job['total_s']:.1f} s (98% validation accuracy after {reached})"
            )
        lines.append(f"main job wall time / previous main job's: {jobs['wall_ratio']:.3f}")
    lines += _format_training_precision(report.get("training_precision"))
    lines += _format_main_job_precision(report.get("main_job_precision"))
    for key, label in (("main_job", "the main job's model"), ("rts_resnet", "ResNet-20 trained on mnist5k-rts")):
        if report.get("int8"):
            lines += _format_int8(report["int8"][key], label)
    a = report["analysis"]
    if a is not None:
        lines.append(
            f"analyzer: cnnlab.analyze({a['model']}, 3x{a['size']}x{a['size']}) {a['analyze_s']:.2f} s "
            f"({a['analyze_first_s']:.2f} s the first call in a process, PyTorch's one-time imports included); "
            f"`cnnlab models` (the whole registry, Python's start included) {a['models_cli_s']:.1f} s "
            f"({a['models_cli_first_s']:.1f} s the first time, every model counted into the cache)"
        )
    return "\n".join(lines)


def _format_models(models: list[Mapping[str, Any]]) -> str:
    """The per-model table: batch-1 latency, throughput and training speed against the peer; a summary row's
    ratio with the lowest and highest of its runs."""
    rows = []
    for r in models:
        if r["status"] != "ok":
            rows.append([r["name"], r["status"][:100]] + [""] * 11)
            continue
        cells = [r["name"], r["peer"], str(r["size"])]
        for key, scale in zip(MEASURES, (1e3, None, None), strict=True):
            c = r[key]
            ratio = _num(c["ratio"], 3) if "error" not in c else ""
            if "ratios" in c and len(c["ratios"]) > 1:
                ratio += f" ({min(c['ratios']):.2f}-{max(c['ratios']):.2f})"
            if "error" in c:
                cells += ["error", "error", ""]
            elif scale is None:  # images per second
                cells += [_num(1 / c["ours_s"]), _num(1 / c["theirs_s"]), ratio]
            else:  # milliseconds per image
                cells += [_num(c["ours_s"] * scale), _num(c["theirs_s"] * scale), ratio]
        rows.append([*cells, _num(r["gflops_ours"])])
    headers = ["model", "peer", "size", "b1 ms", "peer ms", "ratio", "img/s", "peer img/s", "ratio"]
    headers += ["train img/s", "peer train", "ratio", "GFLOP/s"]
    return format_table(rows, headers, right_aligned=[i >= 2 for i in range(len(headers))])


def _format_peak(report: Mapping[str, Any]) -> str:
    """The float32 GEMM peak, the implementation that reached it, and each implementation's rate."""
    n = report["config"]["peak_matmul_n"]
    rates = ", ".join(
        f"{k} {'failed' if v is None else f'{v:,.1f}'}" for k, v in report["peak_matmul_by_source"].items()
    )
    return (
        f"float32 GEMM peak ({n}x{n}, the best of torch.mm, numpy's OpenBLAS without {'/'.join(BLAS_OVERRIDES)} and "
        f"onnxruntime's MatMul): {report['peak_matmul_gflops']:,.1f} GFLOP/s by {report['peak_matmul_source']} "
        f"(GFLOP/s: {rates})"
    )


def _format_optimized(o: Mapping[str, Any], peak: float) -> list[str]:
    """The inference paths of the optimization comparison as a table, and the optimized path's accuracy."""
    b = o["batch"]
    eager = o["paths"]["peer_eager"]
    rows = []
    for key, p in o["paths"].items():
        name = PATHS[key].format(peer=o["peer"], backend=o["backend"], openvino_default=o.get("openvino_default"))
        rows.append([
            name, _num(p["prepare_s"]), _num(p["b1_s"] * 1e3, 2), _num(eager["b1_s"] / p["b1_s"], 3),
            _num(1 / p["batch_s"]), _num(eager["batch_s"] / p["batch_s"], 3), _num(p["gflops"]),
            f"{p['gflops'] / peak:.0%}", f"{p['max_abs_diff']:.1e}", f"{p['same_top1']:.0%}",
        ])  # fmt: skip
    headers = ["inference path", "prepare s", "b1 ms", "ratio", f"b{b} img/s", "ratio", "GFLOP/s", "of peak"]
    headers += ["max diff", "top-1"]
    return [
        f"inference of {o['name']} at {o['size']}x{o['size']}, batch 1 and {b}; ratio = speed / peer eager speed; "
        f"max diff and top-1 against the peer's eager output (up to {o['output_absmax']:.2f}; float32 eager itself is "
        f"{o['eager_fp32_error']:.2e} off float64)",
        format_table(rows, headers, right_aligned=[i >= 1 for i in range(len(headers))]),
    ]


def _format_onnxruntime(models: list[Mapping[str, Any]]) -> list[str]:
    """ONNX Runtime on each peer exported as it is, against the peer's eager model (ratio > 1: onnxruntime faster)."""
    rows = []
    for r in models:
        ort = r.get("onnxruntime") if r["status"] == "ok" else None
        if ort is None:
            continue
        cells = [r["name"], r["peer"], str(r["size"])]
        for key, per_image in (("latency_b1", True), ("throughput", False)):
            c = ort[key]
            if "error" in c:
                cells += ["error", "", ""]
            elif per_image:  # milliseconds per image
                cells += [_num(c["ours_s"] * 1e3), _num(c["theirs_s"] * 1e3), _num(c["ratio"], 3)]
            else:
                cells += [_num(1 / c["ours_s"]), _num(1 / c["theirs_s"]), _num(c["ratio"], 3)]
        rows.append(cells)
    if not rows:
        return []
    headers = ["model", "peer", "size", "ort b1 ms", "eager ms", "ratio", "ort img/s", "eager img/s", "ratio"]
    return [
        "",
        "onnxruntime on torch.onnx.export(peer) against the peer's eager model; ratio = onnxruntime / eager speed",
        format_table(rows, headers, right_aligned=[i >= 2 for i in range(len(headers))]),
    ]


def _format_training_precision(t: Mapping[str, Any] | None) -> list[str]:
    """Training images per second in float32 and bfloat16 (and compiled), with each one's speed-up over float32."""
    if t is None:
        return []
    if "skipped" in t:
        return ["", f"training in bfloat16: skipped ({t['skipped']})"]
    variants = list(dict.fromkeys(v for r in t["rows"] for v in r["images_per_s"]))
    rows = []
    for r in t["rows"]:
        cells = [r["model"], str(r["size"]), str(r["batch"])]
        for v in variants:
            ips = r["images_per_s"].get(v)
            cells += ["", ""] if ips is None else [_num(ips), f"{r['speedup'][v]:.2f}x"]
        compile_s = [
            f"{r['first_step_s'][v]:.0f}" for v in variants if v.endswith("compile") and v in r["first_step_s"]
        ]
        rows.append([*cells, "/".join(compile_s)])
    headers = ["model", "size", "batch"]
    for v in variants:
        headers += [f"{v} img/s", "vs fp32"]
    headers.append("compile s")
    return [
        "",
        "training step (forward, backward, SGD; channels-last) in float32 and under bfloat16 autocast, interleaved; "
        "compile s: the first compiled step",
        format_table(rows, headers, right_aligned=[i >= 1 for i in range(len(headers))]),
    ]


def _format_main_job_precision(m: Mapping[str, Any] | None) -> list[str]:
    """The main job in each precision over the seeds: final validation and test accuracy, wall time."""
    if m is None:
        return []
    if "skipped" in m:
        return ["", f"the main job in bfloat16: skipped ({m['skipped']})"]
    rows = [
        [r["precision"], str(r["seed"]), f"{r['final_val_acc']:.2%}", f"{r['final_test_acc']:.2%}",
         f"{r['best_val_acc']:.2%}", f"{r['best_test_acc']:.2%}", f"{r['total_s']:.1f}"]
        for r in m["runs"]
    ]  # fmt: skip
    for p, sm in m["summary"].items():
        rows.append([
            f"{p} mean", "", *(f"{sm[k]['mean']:.2%} ({sm[k]['min']:.2%}-{sm[k]['max']:.2%})"
                               for k in ("final_val_acc", "final_test_acc", "best_val_acc", "best_test_acc")),
            f"{sm['total_s']['mean']:.1f}",
        ])  # fmt: skip
    headers = ["precision", "seed", "final val", "final test", "best val", "best test", "wall s"]
    within = "within" if m["bf16_within_seed_spread"] else "outside"
    return [
        "",
        f"main job ({m['model']}, {m['epochs']} epochs) in float32 and bfloat16, seeds {m['seeds']} (the two "
        "precisions of a seed one after the other, alternating which goes first)",
        format_table(rows, headers, right_aligned=[i >= 1 for i in range(len(headers))]),
        f"bfloat16's mean final validation accuracy is {within} float32's seed spread; wall time bf16 / fp32: "
        f"{m['wall_ratio']:.3f}",
    ]


def _format_int8(r: Mapping[str, Any], label: str) -> list[str]:
    """A trained model's test accuracy and speed in float32 and int8, per runtime."""
    rows = [
        [name, f"{p['test_acc']:.2%}", f"{p['same_top1']:.2%}", _num(p["images_per_s"], 0), _num(p["prepare_s"])]
        for name, p in r["paths"].items()
    ]
    headers = ["path", "test acc", "same top-1", "img/s", "prepare s"]
    return [
        "",
        f"int8 of {label} ({r['model']} on {r['data']}, {r['test_images']:,} test images; calibrated on "
        f"{r['calibration_images']} training images): accuracy, top-1 agreement with float32 eager, speed",
        format_table(rows, headers, right_aligned=[i >= 1 for i in range(len(headers))]),
    ]
