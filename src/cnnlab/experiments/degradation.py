"""The degradation experiment (He et al. 2016, Sec. 4.1-4.2, Fig. 1, 4 and 6).

Plain and residual CIFAR-style networks of each depth (6n+2 layers: a 3x3 conv, three stages of n units of two
3x3 convs, a fc) train with one recipe and the same seeds. The paper's claim: the deeper *plain* net has the
higher *training* error (so the problem is optimisation, not over-fitting), while the deeper ResNet has the lower.
The paper also argues the cause is not vanishing gradients (BN keeps them healthy): the per-block gradient norms
at initialisation and at the end let that be checked.

Departure from the paper: the default data is the embedded MNIST-5k (4,000 training images) and the default run
is a few epochs, so that it finishes in minutes on a laptop CPU; ``--data cifar10 --epochs 160`` is the paper's
setting (with the paper's step schedule: ``--schedule step``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError, suggest
from cnnlab.experiments.runner import (
    Summary,
    Trial,
    TrialResult,
    markdown_table,
    pct,
    run_trials,
    summarize,
    write_results,
)
from cnnlab.machine import machine_summary
from cnnlab.plotting import pyplot, save_figure
from cnnlab.registry import list_models
from cnnlab.train.config import TrainConfig

DEFAULT_RECIPE = TrainConfig(epochs=6)  # the main job's recipe, shortened: 4 nets x 2 seeds in about 10 min on 2 cores


def degradation_trials(depths: Sequence[int], seeds: Sequence[int]) -> list[Trial]:
    """plain-d and resnet-d for each depth, each seed; deepest last (the longest runs start first in a pool)."""
    trials = []
    for d in depths:
        for kind in ("plain", "resnet"):
            name = f"cifar_{kind}{d}"
            if name not in list_models():
                known = sorted(int(n.removeprefix("cifar_plain")) for n in list_models("cifar_plain*"))
                raise ConfigError(
                    f"no registered model {name!r}: depths with a plain twin are {known}.{suggest(name, list_models())}"
                )
            trials += [Trial(f"{kind}-{d}", name, {}, s) for s in seeds]
    return sorted(trials, key=lambda t: -int(t.label.split("-")[1]))


def plot_training_curves(results: Sequence[TrialResult], path: Path) -> Path:
    """Figure 6 of the paper, per epoch: training error (bold) and validation error (thin), plain left, ResNet right,
    one colour per depth, mean over seeds."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    depths = sorted({int(r.label.split("-")[1]) for r in results})
    colors = dict(
        zip(depths, plt.cm.viridis([i / max(1, len(depths) - 1) * 0.85 for i in range(len(depths))]), strict=True)
    )
    for ax, kind, title in ((axes[0], "plain", "plain networks"), (axes[1], "resnet", "ResNets")):
        for d in depths:
            group = [r for r in results if r.label == f"{kind}-{d}"]
            if not group:
                continue
            epochs = [m["epoch"] for m in group[0].history]
            for key, style, width in (("train_acc", "-", 2.4), ("val_acc", "--", 1.0)):
                err = [100 * (1 - sum(r.history[i][key] for r in group) / len(group)) for i in range(len(epochs))]
                label = f"{kind}-{d} {'train' if key == 'train_acc' else 'validation'}"
                ax.plot(epochs, err, style, lw=width, color=colors[d], label=label)
        ax.set(title=title, xlabel="epoch", yscale="log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("error (%)  — bold: training, dashed: validation")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_grad_norms(results: Sequence[TrialResult], path: Path) -> Path:
    """Per-block gradient norm (log scale) from input to output, at initialisation and at the end, seed 0."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    firsts: dict[str, TrialResult] = {}
    for r in results:
        firsts.setdefault(r.label, r)  # the first seed of each label
    for ax, when in zip(axes, ("init", "end"), strict=True):
        for label, r in firsts.items():
            norms = r.grad_norms.get(when, {})
            ax.plot(range(len(norms)), list(norms.values()), "-" if label.startswith("resnet") else "--", label=label)
        ax.set(
            title=f"gradient norm per block at {'initialisation' if when == 'init' else 'the last step'}",
            xlabel="block (input → output)",
            yscale="log",
        )
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def grad_norm_rows(results: Sequence[TrialResult]) -> list[list[Any]]:
    """Per label (seed 0): the first and last block's gradient norm and their ratio, at init and at the end."""
    rows = []
    firsts: dict[str, TrialResult] = {}
    for r in results:
        firsts.setdefault(r.label, r)
    for label, r in firsts.items():
        row: list[Any] = [label]
        for when in ("init", "end"):
            values = [v for v in r.grad_norms.get(when, {}).values()]
            first, last = (values[0], values[-2]) if len(values) > 2 else (float("nan"), float("nan"))
            row += [f"{first:.3g}", f"{last:.3g}", f"{first / last:.3g}" if last else "inf"]
        rows.append(row)
    return rows


def run_degradation(
    *,
    depths: Sequence[int] = (20, 56),
    seeds: Sequence[int] = (0, 1),
    recipe: TrainConfig = DEFAULT_RECIPE,
    out_dir: Path = Path("experiments/results/degradation"),
    jobs: int = 2,
    command: str = "",
    log: Callable[[str], None] = print,
) -> list[Summary]:
    """Train every plain/ResNet pair, write ``results.json``, ``summary.md``, ``training_curves.png`` and
    ``grad_norms.png`` into ``out_dir``, and return the per-model summaries."""
    if len(seeds) < 1:
        raise ConfigError("give at least one seed (two or more for a spread)")
    trials = degradation_trials(depths, seeds)
    log(
        f"degradation: {len(trials)} runs ({', '.join(dict.fromkeys(t.label for t in trials))} x seeds {list(seeds)}) "
        f"on {recipe.data}, {recipe.epochs} epochs each, {jobs} at a time"
    )
    t0 = time.perf_counter()
    results = run_trials(trials, recipe, out_dir, jobs=jobs, log=log)
    order = [f"{k}-{d}" for d in sorted(depths) for k in ("plain", "resnet")]
    results = sorted(results, key=lambda r: (order.index(r.label), r.seed))
    summaries = summarize(results)
    for s in summaries:
        s.extra["params"] = next(r.params for r in results if r.label == s.label)
    wall = time.perf_counter() - t0
    table = markdown_table(
        [
            [
                s.label,
                s.extra["params"],
                s.seeds,
                pct(s.train_error_mean, s.train_error_std),
                pct(s.test_error_mean, s.test_error_std),
            ]
            for s in summaries
        ],
        ["model", "params", "seeds", "final training error % (mean ± std)", "test error % (mean ± std)"],
    )
    grads = markdown_table(
        grad_norm_rows(results),
        [
            "model",
            "init: first block",
            "init: last block",
            "init: ratio",
            "end: first block",
            "end: last block",
            "end: ratio",
        ],
    )
    plot_training_curves(results, out_dir / "training_curves.png")
    plot_grad_norms(results, out_dir / "grad_norms.png")
    meta = {
        "command": command,
        "recipe": recipe.to_dict(),
        "machine": machine_summary(),
        "wall_s": wall,
        "seeds": list(seeds),
        "depths": list(depths),
    }
    write_results(out_dir, results, summaries, meta)
    text = (
        f"# Degradation: plain against residual networks\n\nCommand: `{command}`\n\n"
        f"Data {recipe.data}; recipe: {recipe.epochs} epochs, batch {recipe.batch_size}, "
        f"{recipe.optimizer} lr {recipe.lr} ({recipe.schedule}), "
        f"weight decay {recipe.weight_decay}, label smoothing {recipe.label_smoothing}; "
        f"seeds {list(seeds)}. Machine: {meta['machine']}; wall time {wall / 60:.1f} min.\n\n"
        f"Training error is measured after training, in eval mode, on the un-augmented training images.\n\n{table}\n\n"
        f"Gradient norm of the first block (the stem) and the last block before the head, "
        f"seed {seeds[0]}:\n\n{grads}\n\n"
        "![training curves](training_curves.png)\n\n![gradient norms](grad_norms.png)\n"
    )
    (out_dir / "summary.md").write_text(text)
    log(
        f"\n{table}\n\n{grads}\n\nwrote {out_dir}/summary.md, results.json, training_curves.png, grad_norms.png "
        f"in {wall / 60:.1f} min"
    )
    return summaries
