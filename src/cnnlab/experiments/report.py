"""An experiment's folder: ``results.json``, ``summary.md`` and its plots, written from the collected runs.

``summary.md`` is rendered from ``results.json`` alone (:func:`render`: no figure in it is typed by hand or
computed elsewhere). It states the claim and its source (the paper's own figures), the exact command, the recipe
and the machine, the rounds of a sequential experiment, a table of every variant (params, MACs and receptive
field at the input size, the runs that failed, diverged or converged, then each error as mean ± standard
deviation over the seeds with the test error's binomial standard error, steps to a target as the median and the
runs that reached it), each expected comparison with its test, effect, minimum detectable effect, the seeds that
would decide it and the verdict, and the plots: ``curves.png`` (training and validation error per epoch, mean
over seeds), ``grad_norms.png`` (per block, at the first and the last step, when recorded), ``lesion.png`` (error
against blocks removed, when probed) and ``error_vs_params.png`` (test error against parameters, one line per
model family, when a family has variants of two or more sizes: DenseNet against ResNet, Huang et al. 2017, Fig. 4).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnlab.analysis import analyze
from cnnlab.errors import ConfigError
from cnnlab.experiments.collect import ExperimentResult, RunRecord, Summary, rejudge, to_json
from cnnlab.experiments.spec import COUNT_METRICS, SEGMENTATION_METRICS, Expectation, ExperimentSpec, is_fraction
from cnnlab.experiments.stats import ALPHA, Comparison, interval_label, seeds_text
from cnnlab.plotting import pyplot, save_figure
from cnnlab.registry import meta_model, model_entry
from cnnlab.train.checkpoint import LAST, load_checkpoint

TABLE_METRICS = ("train_error", "val_error", "test_error")  # always in the table; expected metrics are added
PROBE_METRICS = ("offset_px",)  # in the table when the runs measured them (deformable layers' offsets)


def _segmentation(runs: Sequence[dict[str, Any]]) -> bool:
    return any("test_miou" in r["metrics"] for r in runs)


def pct(s: dict[str, Any] | None) -> str:
    """``"1.23 ± 0.45"`` (percent), ``"1.23"`` for one value, ``"-"`` for none (``s``: a summary as JSON)."""
    if s is None or s["mean"] is None:
        return "-"
    return f"{100 * s['mean']:.2f}" + (f" ± {100 * s['std']:.2f}" if s["std"] is not None else "")


def number(s: dict[str, Any] | None) -> str:
    if s is None or s["mean"] is None:
        return "-"
    values = s["values"]
    if values and all(float(v).is_integer() for v in values) and len(set(values)) == 1:
        return f"{int(values[0]):,}"  # a count the seeds agree on (parameters): exact
    return f"{s['mean']:,.4g}" + (f" ± {s['std']:,.3g}" if s["std"] is not None else "")


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


def binomial_se(error: float, n: int) -> float:
    """The binomial standard error of an error rate measured on ``n`` test images: sqrt(p (1 - p) / n)."""
    return math.sqrt(error * (1 - error) / n)


def _targets(payload: dict[str, Any]) -> list[float]:
    target = payload["fingerprint"].get("target")
    return [] if target is None else target if isinstance(target, list) else [target]


def _steps_cell(runs: Sequence[dict[str, Any]], target: float) -> str:
    """``"171 (3/3 reached)"``: the Kaplan-Meier median of the steps to ``target`` and how many runs got there."""
    from cnnlab.experiments.collect import reach
    from cnnlab.experiments.stats import _median_time

    times = [reach(r["curve"], target) for r in runs]
    median = _median_time([t for t, _ in times], [ok for _, ok in times])
    reached = sum(ok for _, ok in times)
    return f"{'-' if median is None else f'{median:,.0f}'} ({reached}/{len(runs)} reached)"


def _runs_cell(runs: Sequence[dict[str, Any]]) -> str:
    text = f"{sum(r['status'] == 'ok' for r in runs)}/{len(runs)}"
    notes = [f"{n} {what}" for what, n in (
        ("diverged", sum(r["status"] == "diverged" for r in runs)),
        ("failed", sum(bool(r.get("failure")) for r in runs)),
        ("converged", sum(r.get("converged") is True for r in runs)),
    ) if n or (what == "converged" and any(r.get("converged") is not None for r in runs))]  # fmt: skip
    return text + (f" ({', '.join(notes)})" if notes else "")


def variant_table(payload: dict[str, Any]) -> str:
    """Each variant's size and, per metric, mean ± standard deviation over its seeds (steps to a target: the
    median and how many runs reached it; the test error's binomial standard error beside its spread)."""
    runs, summary, arch = payload["runs"], payload["summary"], payload.get("architecture") or {}
    always = SEGMENTATION_METRICS if _segmentation(runs) else TABLE_METRICS
    extra = [e["metric"] for e in payload["expect"] if e["metric"] not in (*always, "params")]  # params: a column
    extra += [m for m in PROBE_METRICS if any(m in s for s in summary.values())]  # measured where they apply
    metrics = [*always, *dict.fromkeys(extra)]
    curves = all(r.get("curve") is not None for r in runs if r["status"] != "missing")
    size = next((a["input"] for a in arch.values()), None)
    headers = ["variant", "params", f"MMACs at {size}x{size}" if size else "MMACs", "receptive field", "runs"]
    for m in metrics:
        if m == "steps_to_target" and curves:
            headers += [f"steps to {100 * t:.4g}% (median)" for t in _targets(payload)]
        else:
            headers.append(f"{m.replace('_', ' ')} {'%' if is_fraction(m) else ''}".strip())
        if m == "test_error":
            headers.append("test error's binomial SE %")
    rows = []
    for v in payload["fingerprint"]["variants"]:
        label = v["label"]
        a, s = arch.get(label, {}), summary.get(label, {})
        mine = [r for r in runs if r["label"] == label]
        done = [r for r in mine if r["status"] != "missing"]
        row: list[Any] = [label, a.get("params", "-"), f"{a['macs'] / 1e6:.2f}" if a else "-",
                          a.get("receptive_field", "-"), _runs_cell(mine)]  # fmt: skip
        for m in metrics:
            if m == "steps_to_target" and curves:
                row += [_steps_cell(done, t) for t in _targets(payload)]
            elif m in COUNT_METRICS:
                values = s.get(m, {}).get("values", [])
                row.append(f"{int(sum(values))}/{len(values)}" if values else "-")
            else:
                row.append(pct(s.get(m)) if is_fraction(m) else number(s.get(m)))
            if m == "test_error":
                n = [r["test_images"] for r in done if r.get("test_images")]
                mean = s.get(m, {}).get("mean")
                row.append(f"{100 * binomial_se(mean, round(statistics.fmean(n))):.2f}" if n and mean is not None
                           else "-")  # fmt: skip
        rows.append(row)
    return markdown_table(rows, headers)


def _means(c: dict[str, Any], scale: int) -> str:
    if c["test"] == "logrank":
        reached = c.get("events") or ("?", "?")
        med = [("-" if m is None else f"{m:,.0f}") for m in (c["better_mean"], c["worse_mean"])]
        return f"median {med[0]} vs {med[1]} (reached {reached[0]}/{c['n_better']}, {reached[1]}/{c['n_worse']})"
    return f"{scale * c['better_mean']:.4g} vs {scale * c['worse_mean']:.4g}"


def _effect(c: dict[str, Any], scale: int) -> str:
    ci = c.get("ci90")
    if c["test"] == "logrank":  # a log hazard ratio: shown as the hazard ratio
        interval = f" [{math.exp(ci[0]):.3g}, {math.exp(ci[1]):.3g}]" if ci else ""
        return f"HR {math.exp(c['effect']):.3g}{interval}"
    interval = f" [{scale * ci[0]:+.3g}, {scale * ci[1]:+.3g}]" if ci else ""
    return f"{scale * c['effect']:+.3g}{interval}"


def _mde(c: dict[str, Any], scale: int) -> str:
    if "mde" not in c:
        return "n/a"
    if c["mde"] is None:
        return "-"
    return f"HR {math.exp(c['mde']):.3g}" if c["test"] == "logrank" else f"{scale * c['mde']:+.3g}"


def _no_seeds(c: dict[str, Any]) -> str:
    """The seeds column without a number: none would decide it (no effect) or more than the search goes."""
    text = seeds_text(Comparison.from_json(c))
    return f"> {text.split()[2]}" if text.startswith("more than") else "-"


def comparison_table(payload: dict[str, Any]) -> str:
    """Each expectation: the means, the effect with its interval, the one-sided p-value, the smallest effect the
    test could detect and the seeds that would decide the observed one, and the verdict (with why, if invalid)."""
    rows = []
    decided = {(c["better"], c["worse"], c["metric"]): c for c in payload["comparisons"]}
    for d in payload["expect"]:
        e = Expectation(**d)
        c = decided.get(e.key())
        if c is None:
            rows.append([e.text(), "-", "-", "-", "-", "-", "-", "not shown (fewer than two measured seeds)"])
            continue
        scale = 100 if is_fraction(e.metric) else 1
        test = {"welch": "Welch", "fisher": "Fisher", "logrank": "log-rank"}[c["test"]]
        seeds = "n/a" if "seeds_needed" not in c else c["seeds_needed"] or _no_seeds(c)
        verdict = f"**{c['verdict']}**" + (f": {c['reason']}" if c.get("reason") else "")
        rows.append([
            e.text(), _means(c, scale), _effect(c, scale),
            f"{c['cohens_d']:.2f}" if c.get("cohens_d") is not None else "-",
            f"{c['p_expected']:.3g} ({test})", _mde(c, scale), seeds, verdict,
        ])  # fmt: skip
    alpha = payload.get("alpha", ALPHA)
    headers = ["expected", "means", f"effect [{interval_label(alpha)} CI]", "Cohen's d", "p (one-sided)",
               "MDE (80% power)", "seeds to decide", "verdict"]  # fmt: skip
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


PLOTS = ("curves.png", "grad_norms.png", "lesion.png", "error_vs_params.png")  # in the order summary.md shows them


def _explanation(payload: dict[str, Any]) -> str:
    runs, expect = payload["runs"], payload["expect"]
    alpha = payload.get("alpha", ALPHA)
    text = (
        "Mean IoUs (overall, on the pixels of small and of large objects) are mean ± sample standard deviation "
        "over the seeds, in percent; the test split was evaluated once per run, after training, for the final "
        "weights. A diverged run counts as an IoU of 0."
        if _segmentation(runs)
        else "Errors are mean ± sample standard deviation over the seeds, in percent, with the binomial standard "
        "error of the test error on the test split's images beside them (copies of one digit, test_copies, are not "
        "independent: with copies it is a lower bound). The training error is measured after training, in eval "
        "mode, on the un-augmented training images; the test split was evaluated once per run, after training. "
        "A diverged run counts as chance error."
    )
    text += (
        " Each expectation is a one-sided test over the seeds (Welch's t-test; Fisher's exact test for counts; "
        "the log-rank test for steps to a target, where a run that never reached it is censored at its last step) "
        f"at alpha {alpha:.4g}; the effect is positive when the claim is right, and its {interval_label(alpha)} "
        f"interval excludes 0 exactly when the test gives p < {alpha:.4g}. The MDE is the smallest effect the test "
        "had 80% power to detect from the observed spread, and 'seeds to decide' the seeds per variant at which it "
        "would have 80% power at the observed effect. A run whose training accuracy stayed near chance, or whose "
        "loss diverged, has failed: an expectation resting on one is invalid unless it is about failure."
    )
    if any(e["metric"] == "steps_to_target" for e in expect) and any(r.get("curve") is None for r in runs):
        text += (
            " Steps to the target were counted once per epoch, a run that never reached it one epoch past its end, "
            "and compared by Welch's test: these results were written before runs validated within epochs."
        )
    if any(e.get("margin") for e in expect):
        text += (
            ' An expectation with a margin ("+ 1 points") is a non-inferiority test: it holds when the interval lies '
            "above minus the margin, so an effect slightly below 0 can hold."
        )
    return text


def _rounds(payload: dict[str, Any]) -> str:
    r = payload.get("rounds")
    if not r:
        return ""
    why = "every expectation decided" if r["decided"] else f"the maximum of {len(payload['seeds'])} seeds reached"
    return (
        f"Until decided: round {r['ran']} of {r['planned']} planned (seeds per round {r['seeds_per_round']}, at most "
        f"{r['max_seeds']}), stopped with {why}; each verdict at alpha {r['alpha']:.4g} (0.05 over the "
        f"{r['planned']} planned looks)."
    )


def render(payload: dict[str, Any], plots: Sequence[str] = ()) -> str:
    """``summary.md`` from an experiment's ``results.json`` (``payload``) alone: every figure in it comes from
    there. ``plots``: the file names of the folder's plots to show."""
    meta, src = payload.get("meta", {}), payload.get("source")
    recipe = payload["fingerprint"]["recipe"]
    recipe_text = ", ".join(f"{k} {v}" for k, v in recipe.items()) or "the defaults of cnnlab train"
    lines = [f"# {payload['name']}", ""]
    if payload.get("claim"):
        lines += [f"**Claim.** {payload['claim']}", ""]
    if src:
        cite = ", ".join(p for p in (src["paper"], src.get("where", "")) if p)
        figures = f" The paper's figures: {src['figures']}." if src.get("figures") else ""
        lines += [f"**Source.** {cite}.{figures}", ""]
    if payload.get("description"):
        lines += [payload["description"].strip(), ""]
    seeds = payload.get("seeds") or payload["fingerprint"]["seeds"]
    lines += [
        f"Command: `{meta.get('command') or '(Python)'}`",
        "",
        f"Recipe: {recipe_text}; seeds {list(seeds)}. Machine: {meta.get('machine', '?')}; "
        f"wall time {meta.get('wall_s', 0) / 60:.1f} min of training"
        + (f" (the runs' own times sum to {meta['runs_wall_s'] / 60:.1f} min)" if meta.get("runs_wall_s") else "")
        + (f", then {meta['collect_s'] / 60:.1f} min measuring them" if meta.get("collect_s") else "")
        + ".",
        "",
    ]
    if _rounds(payload):
        lines += [_rounds(payload), ""]
    lines += [_explanation(payload), "", variant_table(payload), ""]
    if payload["expect"]:
        lines += [f"**Verdict: {payload['verdict']}.**", "", comparison_table(payload), ""]
    lines += [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _write_payload(payload: dict[str, Any], out_dir: Path, plots: Sequence[str]) -> Path:
    """``results.json``, then ``summary.md`` rendered from what was written (read back: only what it holds)."""
    text = json.dumps(payload, indent=2)
    (out_dir / "results.json").write_text(text)
    path = out_dir / "summary.md"
    path.write_text(render(json.loads(text), plots))
    return path


def write(result: ExperimentResult, out_dir: Path, *, meta: dict[str, Any]) -> Path:
    """``results.json``, the plots and ``summary.md`` of ``result`` in ``out_dir``; returns summary.md's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    arch = architecture(result.spec, result.records)
    payload = {"meta": meta, **to_json(result), "architecture": arch}
    drawn = (plot_curves(result, out_dir / "curves.png"), plot_grad_norms(result, out_dir / "grad_norms.png"),
             plot_lesion(result, out_dir / "lesion.png"),
             plot_error_vs_params(result, arch, out_dir / "error_vs_params.png"))  # fmt: skip
    return _write_payload(payload, out_dir, [p.name for p in drawn if p is not None])


def rewrite(spec: ExperimentSpec, out_dir: Path) -> Path:
    """Judge an experiment folder's ``results.json`` again by today's rules (:func:`~cnnlab.experiments.collect.
    rejudge`: from its per-run measurements, no run folder needed) and write it and ``summary.md`` again; the
    plots stay as they are. A ConfigError when the results were made from another version of the file."""
    saved = out_dir / "results.json"
    if not saved.is_file():
        raise ConfigError(f"{saved} does not exist: run the experiment first (cnnlab experiment run)")
    payload = json.loads(saved.read_text())
    if payload.get("fingerprint") != json.loads(json.dumps(spec.fingerprint())):
        raise ConfigError(f"{saved} was made from another version of {spec.name}'s file (recipe, seeds, variants or "
                          "expectations differ): run the experiment again")  # fmt: skip
    result = rejudge(spec, payload)
    new = to_json(result)
    payload |= {k: new[k] for k in ("claim", "source", "description", "expect", "seeds", "alpha", "verdict",
                                    "comparisons", "runs")}  # fmt: skip
    payload.setdefault("rounds", None)
    return _write_payload(payload, out_dir, [p for p in PLOTS if (out_dir / p).is_file()])
