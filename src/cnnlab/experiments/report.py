"""An experiment's folder: ``results.json``, ``summary.md`` and its plots, written from the collected runs.

``summary.md`` states the claim and its source (the paper's own figures), the exact command, the recipe and the
machine, a table of every variant (params, MACs and receptive field at the input size, then each error as mean
± standard deviation over the seeds), each expected comparison with its Welch test, effect size and verdict, and
the plots: ``curves.png`` (training and validation error per epoch, mean over seeds), ``grad_norms.png`` (per
block, at the first and the last step, when recorded), ``lesion.png`` (error against blocks removed, when
probed) and ``error_vs_params.png`` (test error against parameters, one line per model family, when a family has
variants of two or more sizes: DenseNet against ResNet, Huang et al. 2017, Fig. 4).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnlab.analysis import analyze
from cnnlab.experiments.collect import ExperimentResult, RunRecord, Summary, to_json
from cnnlab.experiments.spec import SEGMENTATION_METRICS, ExperimentSpec, is_fraction
from cnnlab.plotting import pyplot, save_figure
from cnnlab.registry import meta_model, model_entry
from cnnlab.train.checkpoint import LAST, load_checkpoint

TABLE_METRICS = ("train_error", "val_error", "test_error")  # always in the table; expected metrics are added


def _segmentation(result: ExperimentResult) -> bool:
    return any("test_miou" in r.metrics for r in result.records)


def pct(s: Summary | None) -> str:
    """``"1.23 ± 0.45"`` (percent), ``"1.23"`` for one value, ``"-"`` for none."""
    if s is None or s.mean is None:
        return "-"
    return f"{100 * s.mean:.2f}" + (f" ± {100 * s.std:.2f}" if s.std is not None else "")


def number(s: Summary | None) -> str:
    if s is None or s.mean is None:
        return "-"
    if s.values and all(float(v).is_integer() for v in s.values) and len(set(s.values)) == 1:
        return f"{int(s.values[0]):,}"  # a count the seeds agree on (parameters): exact
    return f"{s.mean:,.4g}" + (f" ± {s.std:,.3g}" if s.std is not None else "")


def markdown_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    def cell(v: Any) -> str:
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def architecture(spec: ExperimentSpec, records: Sequence[RunRecord]) -> dict[str, dict[str, Any]]:
    """Params, MACs and receptive field of each variant at its runs' input size (from a finished run's
    checkpoint: classes, channels and input size as trained; the model itself built on the meta device)."""
    out = {}
    for v in spec.variants:
        run = next((r for r in records if r.label == v.label and r.status == "ok"), None)
        if run is None:
            continue
        meta = load_checkpoint(run.folder, prefer=LAST)["meta"]
        model = meta_model(v.model, v.model_kwargs, num_classes=meta["num_classes"], in_chans=meta["in_chans"])
        report = analyze(model, (meta["in_chans"], meta["image_size"], meta["image_size"]))
        out[v.label] = {
            "params": report.params, "macs": report.macs, "receptive_field": report.rf_label,
            "input": meta["image_size"],
        }  # fmt: skip
    return out


def variant_table(result: ExperimentResult, arch: dict[str, dict[str, Any]]) -> str:
    spec = result.spec
    always = SEGMENTATION_METRICS if _segmentation(result) else TABLE_METRICS
    extra = [e.metric for e in spec.expect if e.metric not in always]
    metrics = [*always, *dict.fromkeys(extra)]
    size = next((a["input"] for a in arch.values()), None)
    headers = ["variant", "params", f"MMACs at {size}x{size}" if size else "MMACs", "receptive field", "runs"]
    headers += [f"{m.replace('_', ' ')} {'%' if is_fraction(m) else ''}".strip() for m in metrics]
    rows = []
    for v in spec.variants:
        a, s = arch.get(v.label, {}), result.summary[v.label]
        runs = [r for r in result.records if r.label == v.label]
        status = f"{sum(r.status == 'ok' for r in runs)}/{len(runs)}"
        if any(r.status == "diverged" for r in runs):
            status += f" ({sum(r.status == 'diverged' for r in runs)} diverged)"
        row: list[Any] = [
            v.label,
            a.get("params", "-"),
            f"{a['macs'] / 1e6:.2f}" if a else "-",
            a.get("receptive_field", "-"),
            status,
        ]
        row += [pct(s.get(m)) if is_fraction(m) else number(s.get(m)) for m in metrics]
        rows.append(row)
    return markdown_table(rows, headers)


def comparison_table(result: ExperimentResult) -> str:
    rows = []
    decided = {(c.better, c.worse, c.metric): c for c in result.comparisons}
    for e in result.spec.expect:
        c = decided.get((e.better, e.worse, e.metric))
        if c is None:
            rows.append([e.text(), "-", "-", "-", "-", "not shown (fewer than two measured seeds)"])
            continue
        scale = 100 if is_fraction(e.metric) else 1
        ci = f" [{scale * c.ci90[0]:+.3g}, {scale * c.ci90[1]:+.3g}]" if c.ci90 else ""
        rows.append([
            e.text(),
            f"{scale * c.better_mean:.4g} vs {scale * c.worse_mean:.4g}",
            f"{scale * c.effect:+.3g}{ci}",
            f"{c.cohens_d:.2f}" if c.cohens_d is not None else "-",
            f"{c.p_expected:.3g} ({'Welch' if c.test == 'welch' else 'Fisher'})",
            f"**{c.verdict}**",
        ])  # fmt: skip
    headers = ["expected", "means", "effect [90% CI]", "Cohen's d", "p (one-sided)", "verdict"]
    return markdown_table(rows, headers)


def plot_curves(result: ExperimentResult, path: Path) -> Path | None:
    """Training (solid) and validation (dashed) error per epoch, mean over the seeds of each variant."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    drawn = False
    colors = plt.cm.tab10.colors
    for i, v in enumerate(result.spec.variants):
        runs = [r for r in result.records if r.label == v.label and r.status == "ok" and r.history]
        if not runs:
            continue
        n = min(len(r.history) for r in runs)
        epochs = [r["epoch"] for r in runs[0].history[:n]]
        for key, style in (("train_acc", "-"), ("val_acc", "--")):
            values = [[r.history[k].get(key) for r in runs] for k in range(n)]
            err = [100 * (1 - sum(x) / len(x)) if all(a is not None for a in x) else math.nan for x in values]
            ax.plot(
                epochs, err, style, color=colors[i % 10], label=f"{v.label} {'train' if key == 'train_acc' else 'val'}"
            )
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set(
        xlabel="epoch",
        ylabel="error (%)",
        yscale="log",
        title=f"{result.spec.name}: training (solid) and validation (dashed) error",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_grad_norms(result: ExperimentResult, path: Path) -> Path | None:
    """Per-block gradient norm from input to output at the first and the last step, the first seed of each."""
    firsts = {}
    for r in result.records:
        if r.grad_norms and r.label not in firsts:
            firsts[r.label] = r
    if not firsts:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, when in zip(axes, ("init", "end"), strict=True):
        for label, r in firsts.items():
            norms = r.grad_norms.get(when, {})
            ax.plot(range(len(norms)), list(norms.values()), label=label)
        ax.set(title=f"gradient norm per block at {'initialisation' if when == 'init' else 'the last step'}",
               xlabel="block (input → output)", yscale="log")  # fmt: skip
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_lesion(result: ExperimentResult, path: Path) -> Path | None:
    """Validation error against the number of blocks removed (0: intact; 1: each block in turn), mean over seeds
    (Veit et al. 2016, Fig. 3 and 5)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    drawn = False
    for v in result.spec.variants:
        runs = [r for r in result.records if r.label == v.label and r.lesion]
        if not runs:
            continue
        blocks = list(runs[0].lesion["blocks"])
        each = [sum(r.lesion["blocks"][b] for r in runs) / len(runs) for b in blocks]
        axes[0].plot(range(len(blocks)), [100 * e for e in each], "o-", ms=3, label=v.label)
        ks = sorted(int(k) for k in runs[0].lesion["random"])
        curve = [sum(r.lesion["intact"] for r in runs) / len(runs)]
        curve += [sum(r.lesion["random"][str(k)]["mean"] for r in runs) / len(runs) for k in ks]
        axes[1].plot([0, *ks], [100 * c for c in curve], "o-", label=v.label)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    axes[0].set(title="one block removed", xlabel="block removed (input → output)", ylabel="validation error (%)")
    axes[1].set(title="k random blocks removed", xlabel="blocks removed", ylabel="validation error (%)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_error_vs_params(result: ExperimentResult, arch: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Test error (mean and standard deviation over the seeds) against parameters, one line per model family;
    drawn only when some family has variants of two or more sizes."""
    families: dict[str, list[tuple[int, Summary, str]]] = {}
    for v in result.spec.variants:
        s = result.summary[v.label].get("test_error")
        if v.label in arch and s is not None and s.mean is not None:
            families.setdefault(model_entry(v.model).family, []).append((arch[v.label]["params"], s, v.label))
    if not any(len({p for p, _, _ in points}) > 1 for points in families.values()):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for family, points in sorted(families.items()):
        points.sort(key=lambda t: t[0])
        xs, ys = [p for p, _, _ in points], [100 * s.mean for _, s, _ in points]
        errs = [100 * (s.std or 0.0) for _, s, _ in points]
        ax.errorbar(xs, ys, yerr=errs, fmt="o-", capsize=3, label=family)
        for x, y, (_, _, label) in zip(xs, ys, points, strict=True):
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set(xlabel="parameters", ylabel="test error (%)", title="test error against parameters (mean ± sd over seeds)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def write(result: ExperimentResult, out_dir: Path, *, meta: dict[str, Any]) -> Path:
    """``results.json``, ``summary.md`` and the plots of ``result`` in ``out_dir``; returns summary.md's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = result.spec
    arch = architecture(spec, result.records)
    payload = {"meta": meta, **to_json(result), "architecture": arch}
    (out_dir / "results.json").write_text(json.dumps(payload, indent=2))
    drawn = (plot_curves(result, out_dir / "curves.png"), plot_grad_norms(result, out_dir / "grad_norms.png"),
             plot_lesion(result, out_dir / "lesion.png"),
             plot_error_vs_params(result, arch, out_dir / "error_vs_params.png"))  # fmt: skip
    plots = [p for p in drawn if p is not None]
    recipe = ", ".join(f"{k} {v}" for k, v in spec.recipe.items()) or "the defaults of cnnlab train"
    lines = [f"# {spec.name}", ""]
    if spec.claim:
        lines += [f"**Claim.** {spec.claim}", ""]
    if spec.source:
        lines += [
            f"**Source.** {spec.source.cite()}."
            + (f" The paper's figures: {spec.source.figures}." if spec.source.figures else ""),
            "",
        ]
    if spec.description:
        lines += [spec.description.strip(), ""]
    lines += [
        f"Command: `{meta.get('command') or '(Python)'}`",
        "",
        f"Recipe: {recipe}; seeds {list(spec.seeds)}. Machine: {meta.get('machine', '?')}; "
        f"wall time {meta.get('wall_s', 0) / 60:.1f} min of training"
        + (f" (the runs' own times sum to {meta['runs_wall_s'] / 60:.1f} min)" if meta.get("runs_wall_s") else "")
        + (f", then {meta['collect_s'] / 60:.1f} min measuring them" if meta.get("collect_s") else "")
        + ".",
        "",
        (
            "Mean IoUs (overall, on the pixels of small and of large objects) are mean ± sample standard deviation "
            "over the seeds, in percent; the test split was evaluated once per run, after training, for the final "
            "weights. A diverged run counts as an IoU of 0. Each expectation"
            if _segmentation(result)
            else "Errors are mean ± sample standard deviation over the seeds, in percent. The training error is "
            "measured after training, in eval mode, on the un-augmented training images; the test split was "
            "evaluated once per run, after training. A diverged run counts as chance error. Each expectation"
        )
        + " is a one-sided test over the "
        "seeds (Welch's t-test; Fisher's exact test for divergence); the effect is positive when the claim is right, "
        "and its 90% interval excludes 0 exactly when the test gives p < 0.05."
        + (
            ' An expectation with a margin ("+ 1 points") is a non-inferiority test: it holds when the interval lies '
            "above minus the margin, so an effect slightly below 0 can hold."
            if any(e.margin for e in spec.expect)
            else ""
        ),
        "",
        variant_table(result, arch),
        "",
    ]
    if spec.expect:
        lines += [f"**Verdict: {result.verdict}.**", "", comparison_table(result), ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    path = out_dir / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path
