"""PNG figures of the analyzer's results (matplotlib, imported on use with the non-interactive Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnlab.analysis.erf import EffectiveField
from cnnlab.analysis.gridding import GriddingMap
from cnnlab.analysis.report import ModelReport
from cnnlab.analysis.toys import ToyReport
from cnnlab.analysis.tricks import Figure, before_after, value_label
from cnnlab.plotting import heatmap, pyplot, save_figure

DPI = 120  # the analyzer's figures carry small labels


def plot_summary(report: ModelReport, path: str | Path, *, depth: int | None = 2) -> Path:
    """MACs per layer group (bars) and the receptive field after it (line)."""
    plt = pyplot()
    rows = report.grouped(depth)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.3 * len(rows)), 4))
    xs = np.arange(len(rows))
    ax.bar(xs, [r.macs / 1e6 for r in rows], color="tab:blue")
    ax.set_ylabel("MMACs")
    ax.set_xticks(xs, [r.path for r in rows], rotation=90, fontsize=7)
    rf = ax.twinx()
    rf.plot(xs, [r.rf[0] if r.rf else np.nan for r in rows], color="tab:red", marker=".")
    rf.set_ylabel("receptive field (px)", color="tab:red")
    ax.set_title(f"{report.model} at {'x'.join(map(str, report.input_size))}: {report.gmacs:.3f} GMACs")
    return save_figure(fig, path, dpi=DPI)


def plot_compare(reports: Sequence[ModelReport], path: str | Path, latencies_ms: Sequence[float | None]) -> Path:
    """Params, GMACs, receptive field and latency of several models side by side."""
    plt = pyplot()
    names = [r.model for r in reports]
    panels = [
        ("params (M)", [r.params / 1e6 for r in reports]),
        ("GMACs", [r.gmacs for r in reports]),
        ("receptive field (px)", [r.receptive_field[0] if r.receptive_field else np.nan for r in reports]),
    ]
    if any(t is not None for t in latencies_ms):  # no empty panel after --no-latency
        panels.append(("CPU latency (ms)", [np.nan if t is None else t for t in latencies_ms]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.5))
    for ax, (title, values) in zip(axes, panels, strict=True):
        ax.bar(names, values)
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    return save_figure(fig, path, dpi=DPI)


def plot_tricks(figures: Sequence[Figure], path: str | Path) -> Path:
    """Each trick's two costs, without it (grey) and with it (coloured), on a log scale with their ratio written
    on the bars: the bottleneck's 589,824 against 69,632 weights, "8.5x fewer"."""
    plt = pyplot()
    pairs = before_after(list(figures))
    fig, ax = plt.subplots(figsize=(9, 0.62 * len(pairs) + 1.2))
    labels = []
    for i, (before, after) in enumerate(pairs):
        y = 2.6 * i
        ax.barh(
            [y, y + 1], [before.measured, after.measured], color=["#9ca3af", "tab:green" if after.agrees else "tab:red"]
        )
        ratio = before.measured / after.measured
        change = f"{ratio:.3g}x fewer" if ratio >= 1 else f"{1 / ratio:.3g}x more"
        ax.text(before.measured, y, f" {value_label(before.measured)}", va="center", fontsize=7)
        ax.text(after.measured, y + 1, f" {value_label(after.measured)}: {change}", va="center", fontsize=7,
                weight="bold")  # fmt: skip
        labels += [(y, f"{before.trick}: {before.quantity}"), (y + 1, after.quantity)]
    ax.set_xscale("log")
    ax.set_yticks([y for y, _ in labels], [t for _, t in labels], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("measured cost (log scale): without the trick (grey), with it (green)")
    ax.margins(x=0.15)
    return save_figure(fig, path, dpi=DPI)


def plot_erf(erf: EffectiveField, path: str | Path, *, title: str = "") -> Path:
    """The effective receptive field as a heat map, with the theoretical field's square around its centre."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    heatmap(ax, erf.grad, cmap="inferno", label="mean |input gradient| (max = 1)", zeros="exactly zero")
    if erf.theoretical:
        h, w = erf.grad.shape
        (th, tw), (cy, cx) = erf.theoretical, erf.center
        ax.add_patch(plt.Rectangle((cx - tw / 2, cy - th / 2), tw, th, fill=False, ec="cyan"))
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
    ax.set_title(title or f"effective receptive field ({erf.samples} samples)")
    return save_figure(fig, path, dpi=DPI)


def plot_gridding(grid: GriddingMap, path: str | Path) -> Path:
    """The paths from each input pixel to the centre output of a dilated stack; holes hatched in red."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 5))
    heatmap(ax, grid.window, cmap="viridis", label="paths to the centre output", zeros="holes: no path")
    rates = ", ".join(map(str, grid.rates))
    ax.set_title(f"rates [{rates}]: field {grid.field}, {grid.holes} holes of {grid.field**2}")
    return save_figure(fig, path, dpi=DPI)


def plot_rf_growth(report: ModelReport, path: str | Path) -> Path:
    """The receptive field (and the jump) after each operation in graph order, the top-level blocks marked,
    and the input's size: above it, the field counts the zero padding around the image."""
    plt = pyplot()
    rows = [(i, r) for i, r in enumerate(report.layers) if r.rf is not None]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    ax.plot([i for i, _ in rows], [r.rf[0] for _, r in rows], color="tab:red", lw=1.5, label="receptive field")
    ax.plot([i for i, _ in rows], [r.jump[0] for _, r in rows], color="tab:blue", lw=1, ls="--", label="jump")
    ax.axhline(report.input_size[1], color="black", lw=0.8, ls=":", label=f"input {report.input_size[1]} px")
    starts: dict[str, int] = {}
    for i, r in enumerate(report.layers):
        starts.setdefault(r.path.split(".")[0], i)
    ax.set_xticks(list(starts.values()), list(starts), rotation=60, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("pixels (log scale)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{report.model}: receptive field {report.rf_label} px ({report.rf_of})")
    return save_figure(fig, path, dpi=DPI)


def plot_residual_toy(report: ToyReport, path: str | Path) -> Path:
    """|F(x)| against |F(x) - x| at initialisation, then the SGD steps with and without the shortcut per setting
    on a log scale (seeds that never reached stacked right of the dotted line)."""
    plt = pyplot()
    pairs = report.pairs()
    cols = min(3, 1 + len(pairs))
    rows = -(-(1 + len(pairs)) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    flat = axes.ravel()
    ax = flat[0]
    init = report.init
    bins = np.linspace(0, max(*init.distances, *init.norms), 30)
    ax.hist(init.norms, bins=bins, alpha=0.6, label="|F(x)|: distance to 0", color="tab:green")
    ax.hist(init.distances, bins=bins, alpha=0.6, label="|F(x) - x|: distance to x", color="tab:gray")
    ax.axvline(init.norm_x, color="k", ls="--", lw=1, label=f"|x| = {init.norm_x:.2f}")
    ax.set_title(f"nn.Linear(2, 2) at init, x = [2, 1], {init.seeds} seeds", fontsize=9)
    ax.legend(fontsize=7)
    cap = report.config.max_steps
    edges = np.geomspace(1, cap * 1.3, 40)
    for ax, (shortcut, plain) in zip(flat[1:], pairs, strict=False):
        for r, colour in ((shortcut, "tab:green"), (plain, "tab:gray")):
            steps = [max(s, 1) if s >= 0 else cap * 1.15 for s in r.steps]
            ax.hist(steps, bins=edges, alpha=0.6, color=colour, label=f"{r.variant} ({r.reached} reached)")
        ax.set_xscale("log")
        ax.axvline(cap, color="k", lw=0.8, ls=":")
        ax.set_title(f"{shortcut.task}, depth {shortcut.depth}", fontsize=9)
        ax.set_xlabel("SGD steps (log)")
        ax.legend(fontsize=7)
    for ax in flat[1 + len(pairs) :]:
        ax.axis("off")
    c = report.config
    fig.suptitle(f"steps to RMS |h(x) - x| < {c.tol:g} at lr {c.lr:g}; right of the dotted line: not reached in "
                 f"{cap}", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return save_figure(fig, path)


def _tile(kernel: np.ndarray) -> tuple[np.ndarray, str | None]:
    """One ``in x kh x kw`` kernel as an image: RGB scaled to [0, 1] for 3 input channels, else the mean over its
    input channels on a diverging scale around 0 (its colour map's name)."""
    if kernel.shape[0] == 3:
        rgb = kernel.transpose(1, 2, 0)
        span = np.ptp(rgb) or 1.0
        return (rgb - rgb.min()) / span, None
    return kernel.mean(axis=0), "RdBu_r"


def plot_filters(
    learned: np.ndarray, bank: np.ndarray, path: str | Path, *, title: str = "", bank_title: str = ""
) -> Path:
    """The kernels ``learned`` (out x in x kh x kw) tiled on the left, the filters ``bank`` (n x k x k) on the
    right, each tile on its own scale (grey: 0; red and blue: the two signs)."""
    plt = pyplot()
    panels = [(learned, title or "first-layer filters"), (bank[:, None], bank_title or "Gabor bank")]
    fig = plt.figure(figsize=(10, 5.2))
    outer = fig.add_gridspec(1, 2, wspace=0.12)
    for p, (filters, name) in enumerate(panels):
        cols = int(np.ceil(np.sqrt(len(filters))))
        rows = int(np.ceil(len(filters) / cols))
        grid = outer[p].subgridspec(rows, cols, wspace=0.08, hspace=0.08)
        for i in range(rows * cols):
            ax = fig.add_subplot(grid[i // cols, i % cols])
            ax.set_xticks([])
            ax.set_yticks([])
            if i >= len(filters):
                ax.axis("off")
                continue
            image, cmap = _tile(filters[i])
            limit = float(np.abs(image).max()) or 1.0
            ax.imshow(image, cmap=cmap, vmin=-limit if cmap else None, vmax=limit if cmap else None,
                      interpolation="nearest")  # fmt: skip
            if i == 0:
                ax.set_title(name, fontsize=8, loc="left")
    return save_figure(fig, path, dpi=DPI)
