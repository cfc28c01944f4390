"""The report of one model: its diagram, the per-layer table, the receptive field's growth, the effective
receptive field, the design tricks of its family measured live, and the paper it follows."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from cnnlab.analysis.analyze import InputSize, parse_input_size
from cnnlab.analysis.diagram import diagram
from cnnlab.analysis.erf import effective_receptive_field
from cnnlab.analysis.plots import plot_erf, plot_rf_growth
from cnnlab.analysis.report import LayerReport, ModelReport, format_macs, group_path, shape_label
from cnnlab.analysis.tricks import FAMILY_TRICKS, figures_dicts, tricks_report, value_label
from cnnlab.errors import CnnlabError
from cnnlab.pages.page import Page, number_cell, plot_img, pre, table
from cnnlab.registry import build_model, model_entry

COLUMNS = (("layer", False), ("type", False), ("output", False), ("params", True), ("MACs", True), ("RF", True),
           ("jump", True), ("act MiB", True))  # fmt: skip


def model_page(
    name: str,
    model_kwargs: Mapping[str, Any] | None = None,
    *,
    input_size: InputSize | None = None,
    depth: int = 1,
    expand: Sequence[str] = (),
    erf_samples: int = 4,
) -> Page:
    """The report page of the registered model ``name`` (built with ``model_kwargs``, random weights)."""
    entry = model_entry(name)
    model = build_model(name, model_kwargs)
    size = parse_input_size(input_size) if input_size is not None else None
    d = diagram(model, size, depth=depth, expand=expand, rf=True)
    report = d.report
    page = Page(name, entry.doc.replace("``", ""), _totals(report))
    opened = f", {', '.join(expand)} opened" if expand else ""
    page.add(
        "Diagram",
        f'<div class="scroll">{d.svg()}</div>',
        note=f"Blocks at depth {depth}{opened}: class, output shape, params, MACs, receptive field and jump; "
        "dashed: auxiliary heads (training only). `cnnlab diagram` draws it alone.",
    )
    page.add("Layers", layer_table(report), note="Click a header to sort (rows stay under their block); "
             "click a triangle or a depth to open or close the blocks.")  # fmt: skip
    note = "The receptive field after each operation, in graph order"
    note += f"; at the end it is {report.rf_note()}." if report.rf_exceeds_input else "."
    page.add("Receptive field", plot_img(lambda p: plot_rf_growth(report, p), "receptive field growth"), note=note)
    if erf_samples:
        page.add("Effective receptive field", _erf(model, report, erf_samples))
    tricks = FAMILY_TRICKS.get(entry.family, ())
    if tricks:
        page.add(f"Design tricks of the {entry.family} family", _tricks(tricks),
                 note="Each formula beside the figure measured from cnnlab's blocks (`cnnlab tricks`).")  # fmt: skip
    page.add("Paper", _paper(entry.builder, entry.model_cls))
    return page


def _totals(r: ModelReport) -> str:
    return (
        f"input {'x'.join(map(str, r.input_size))}; {r.params:,} params; {format_macs(r.macs)}; receptive field "
        f"{r.rf_label} px, jump {r.jump[0] if r.jump else '?'}; depth {r.depth} layers with weights"
    )


def tree_rows(report: ModelReport) -> list[tuple[LayerReport, int, str | None]]:
    """Every block at every depth, each under its parent: (row, depth, parent path)."""
    deepest = max((len(r.path.split(".")) for r in report.layers), default=1)
    rows: list[tuple[LayerReport, int, str | None]] = []
    for d in range(1, deepest + 1):
        groups: dict[str, list[LayerReport]] = {}
        for r in report.layers:
            if len(r.path.split(".")) >= d:
                groups.setdefault(group_path(r.path, d), []).append(r)
        for path, members in groups.items():
            rows.append((report.merged(path, members), d, group_path(path, d - 1) if d > 1 else None))
    rows += [(r, 1, None) for r in report.auxiliary]
    order = {path: i for i, path in enumerate(dict.fromkeys(r.path for r in report.layers))}
    first = {}  # a block's place: its first operation's
    for path, i in order.items():
        for d in range(1, len(path.split(".")) + 1):
            first.setdefault(group_path(path, d), i)
    return sorted(rows, key=lambda t: (first.get(t[0].path, len(order)), t[1]))


def layer_table(report: ModelReport) -> str:
    rows = tree_rows(report)
    parents = {p for _, _, p in rows if p}
    head = "".join(
        f'<th class="num" data-key="{h if h != "MACs" else "macs"}">{h}</th>' if num else f"<th>{h}</th>"
        for h, num in COLUMNS
    )
    body = []
    for r, d, parent in rows:
        fold = '<button class="fold">&#9656;</button>' if r.path in parents else '<span class="fold"></span>'
        indent = f'style="padding-left: {10 + 16 * (d - 1)}px"'
        cells = [
            f"<td {indent}>{fold}{escape(r.path.split('.')[-1] if d > 1 else r.path)}</td>",
            f"<td>{escape(r.kind)}</td>",
            f"<td>{escape(shape_label(r.output_shape))}</td>",
            number_cell(r.params, key="params"),
            number_cell(r.macs, key="macs"),
            number_cell(r.rf[0] if r.rf else None, r.rf_label),
            number_cell(r.jump[0] if r.jump else None, r.jump_label),
            number_cell(round(r.activation_bytes / 2**20, 3)),
        ]
        attrs = f'data-path="{escape(r.path)}" data-depth="{d}"'
        attrs += f' data-parent="{escape(parent)}"' if parent else ""
        attrs += ' class="hidden"' if d > 1 else ""
        body.append(f"<tr {attrs}>{''.join(cells)}</tr>")
    deepest = max((d for _, d, _ in rows), default=1)
    buttons = "".join(f'<button data-depth="{d}">depth {d}</button>' for d in range(1, deepest + 1))
    return (
        f'<p class="depths" data-table="layers">show {buttons}</p><div class="scroll">'
        f'<table id="layers" class="sortable" data-tree="1"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _erf(model: Any, report: ModelReport, samples: int) -> str:
    try:
        erf = effective_receptive_field(model, report.input_size, samples=samples)
    except CnnlabError as e:
        return f'<p class="note">not measured: {escape(str(e))}</p>'
    side = erf.effective_side(0.95)
    img = plot_img(lambda p: plot_erf(erf, p, title=f"{report.model}: effective receptive field"), "ERF")
    return (
        f"<p>95% of the input gradient of the centre unit of the last feature map lies within {side} px (the "
        f"theoretical field: {report.rf_label} px); {samples} random inputs, random weights (Luo et al. 2016). "
        "Exact zeros are hatched in red.</p>" + img
    )


def _tricks(names: Sequence[str]) -> str:
    rows = [
        [f["trick"], f["quantity"], f["formula"], value_label(f["expected"]), value_label(f["measured"]),
         '<td class="good">yes</td>' if f["agrees"] else '<td class="bad">NO</td>']
        for f in figures_dicts(tricks_report(list(names)))
    ]  # fmt: skip
    return table(["trick", "quantity", "formula", "formula value", "measured", "agree"], rows)


def _paper(builder: Any, cls: type) -> str:
    parts = []
    family = inspect.getdoc(sys.modules[cls.__module__])
    for title, doc in ((f"{cls.__module__}", family), (cls.__name__, inspect.getdoc(cls)),
                       (f"{builder.__name__}()", inspect.getdoc(builder))):  # fmt: skip
        if doc:
            parts.append(f"<h3>{escape(title)}</h3>{pre(doc)}")
    return "".join(parts)


def write_model_report(name: str, out: str | Path | None = None, **kwargs: Any) -> Path:
    """Write the report of model ``name`` to ``out`` (default: ``NAME-report.html``)."""
    return model_page(name, **kwargs).write(out or f"{name}-report.html")
