"""Ablations: one family, a grid of variants (see :mod:`cnnlab.experiments.spec`), one recipe, several seeds.

Every variant trains once per seed with the same recipe; the table reports the mean and standard deviation of
the final training and test errors beside each variant's parameters, MACs and receptive field, measured by
:func:`cnnlab.analyze` on the dataset's input size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from cnnlab.analysis import analyze
from cnnlab.data import load_dataset
from cnnlab.experiments.runner import (
    Summary,
    Trial,
    markdown_table,
    pct,
    run_trials,
    summarize,
    write_results,
)
from cnnlab.experiments.spec import AblationSpec
from cnnlab.machine import machine_summary
from cnnlab.registry import build_model


def run_ablation(
    spec: AblationSpec,
    *,
    out_dir: Path,
    jobs: int = 2,
    command: str = "",
    log: Callable[[str], None] = print,
) -> list[Summary]:
    """Train the grid and write ``results.json`` and ``summary.md`` into ``out_dir``."""
    recipe = spec.recipe
    data = load_dataset(recipe.data, data_dir=recipe.data_dir, val_fraction=recipe.val_fraction)
    size = (data.in_chans, data.image_size, data.image_size)
    variants = spec.variants()
    trials = [Trial(v.label, v.model, v.model_kwargs, s) for v in variants for s in spec.seeds]
    log(
        f"ablation {spec.name}: {len(variants)} variants of {spec.model} x seeds {list(spec.seeds)} on {recipe.data}, "
        f"{recipe.epochs} epochs each, {jobs} at a time"
    )
    t0 = time.perf_counter()
    results = run_trials(trials, recipe, out_dir, jobs=jobs, log=log)
    summaries = summarize(results)
    for v, s in zip(variants, summaries, strict=True):
        with torch.device("meta"):  # counts from shapes alone
            model = build_model(v.model, v.model_kwargs, num_classes=data.num_classes, in_chans=data.in_chans)
        report = analyze(model, size)
        s.extra.update(params=report.params, macs=report.macs, receptive_field=report.rf_label)
    wall = time.perf_counter() - t0
    rows = [
        [s.label, s.extra["params"], f"{s.extra['macs'] / 1e6:.2f}", s.extra["receptive_field"], s.seeds,
         pct(s.train_error_mean, s.train_error_std), pct(s.test_error_mean, s.test_error_std)]
        for s in summaries
    ]  # fmt: skip
    headers = ["variant", "params", f"MMACs at {size[1]}x{size[2]}", "receptive field", "seeds",
               "training error %", "test error %"]  # fmt: skip
    table = markdown_table(rows, headers)
    meta = {"command": command, "spec": spec.name, "model": spec.model, "grid": dict(spec.grid),
            "recipe": recipe.to_dict(), "machine": machine_summary(), "wall_s": wall,
            "seeds": list(spec.seeds)}  # fmt: skip
    write_results(out_dir, results, summaries, meta)
    text = (
        f"# Ablation: {spec.name}\n\n{spec.description}\n\nCommand: `{command}`\n\n"
        f"Model {spec.model}; data {recipe.data}; recipe: {recipe.epochs} epochs, batch {recipe.batch_size}, "
        f"{recipe.optimizer} lr {recipe.lr} ({recipe.schedule}), weight decay {recipe.weight_decay}, "
        f"label smoothing {recipe.label_smoothing}; seeds {list(spec.seeds)}.\n"
        f"Machine: {meta['machine']}; wall time {wall / 60:.1f} min. Errors are mean ± standard deviation over the "
        "seeds; the training error is measured after training, in eval mode, on the un-augmented training images.\n\n"
        f"{table}\n"
    )
    (out_dir / "summary.md").write_text(text)
    log(f"\n{table}\n\nwrote {out_dir}/summary.md and results.json in {wall / 60:.1f} min")
    return summaries
