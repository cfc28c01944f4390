"""PNG figures of the analyzer's results (matplotlib, imported on use with the non-interactive Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnlab.analysis.erf import EffectiveField
from cnnlab.analysis.gridding import GriddingMap
from cnnlab.analysis.report import ModelReport
from cnnlab.analysis.tricks import Figure
from cnnlab.plotting import pyplot, save_figure

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
        ("CPU latency (ms)", [np.nan if t is None else t for t in latencies_ms]),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.5))
    for ax, (title, values) in zip(axes, panels, strict=True):
        ax.bar(names, values)
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    return save_figure(fig, path, dpi=DPI)


def plot_tricks(figures: Sequence[Figure], path: str | Path) -> Path:
    """Measured / formula for every figure: 1.0 where they agree, missing where a block is not there yet."""
    plt = pyplot()
    labels = [f"{f.trick}: {f.quantity}" for f in figures]
    ratios = [f.measured / f.expected if f.expected else np.nan for f in figures]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(figures) + 1))
    ax.barh(labels, ratios, color=["tab:green" if f.agrees else "tab:gray" for f in figures])
    ax.axvline(1.0, color="black", lw=0.8)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("measured / formula")
    return save_figure(fig, path, dpi=DPI)


def plot_erf(erf: EffectiveField, path: str | Path, *, title: str = "") -> Path:
    """The effective receptive field as a heat map, with the theoretical field's square around its centre."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(erf.grad, cmap="inferno")
    if erf.theoretical:
        h, w = erf.grad.shape
        (th, tw), (cy, cx) = erf.theoretical, erf.center
        ax.add_patch(plt.Rectangle((cx - tw / 2, cy - th / 2), tw, th, fill=False, ec="cyan"))
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
    ax.set_title(title or f"effective receptive field ({erf.samples} samples)")
    return save_figure(fig, path, dpi=DPI)


def plot_gridding(grid: GriddingMap, path: str | Path) -> Path:
    """The paths from each input pixel to the centre output of a dilated stack; holes are black."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(grid.window, cmap="viridis", interpolation="nearest")
    rates = ", ".join(map(str, grid.rates))
    ax.set_title(f"rates [{rates}]: field {grid.field}, {grid.holes} holes of {grid.field**2}")
    return save_figure(fig, path, dpi=DPI)
