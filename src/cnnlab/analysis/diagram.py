"""``cnnlab.diagram(model)``: the network drawn from the same torch.fx graph that :func:`cnnlab.analyze` walks.

Every operation of the graph falls into one box: the module it runs in, cut to ``depth`` components of its path
(``layer3.2``, ``inception4a``), so that a box is a block of the model with its class, output shape, parameters
and MACs (and, with ``rf=True``, its receptive field and jump). A stage (an ``nn.Sequential``) is one box when its
blocks repeat one block, as the papers' tables write "3 x Bottleneck"; a stage of different blocks opens into
them, one box each, as the papers list them: GoogLeNet's inception (4b), (4c) and (4d), which its model keeps in
one stage ``inception4d`` (the stages break where the auxiliary heads tap), DenseNet's transition and dense block,
Inception-v4's reduction and its seven Inception-B blocks. The boxes are joined where one block's output
feeds another: a residual unit opened with ``expand=("layer1.0",)`` shows its shortcut beside the convs meeting
at the addition (a circled +), an Inception module its four branches meeting at the concatenation. Inside an
opened block a conv-norm-act unit (:class:`~cnnlab.layers.ConvBnAct`) stays one box, as the papers draw a
"3x3 conv"; the blocks around an opened one open as far as needed to show it among its siblings. Identity
modules are left out (they pass their input on); the auxiliary classifiers, which only training runs, hang off
the block they read, dashed. The layout is grandalf's layered one (:mod:`.layout`), the drawing :mod:`.scene`'s.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from torch import nn

from cnnlab.analysis.analyze import InputSize, analyze_graph
from cnnlab.analysis.graph import GraphWalk
from cnnlab.analysis.layout import Direction, layered_layout
from cnnlab.analysis.report import ModelReport, format_count, format_macs, group_path, shape_label
from cnnlab.analysis.scene import Arrow, Circle, Group, Rect, Scene, Shape, Text, text_width
from cnnlab.errors import AnalysisError
from cnnlab.layers import ConvBnAct

ATOMIC = (ConvBnAct,)
"""Modules drawn as one box even inside an opened block (the papers' "3x3 conv, 64")."""
MERGES = {"add": "+", "iadd": "+", "add_": "+", "mul": "x", "imul": "x", "mul_": "x"}
"""Functions drawn as a circle with their symbol: the residual addition, the squeeze-and-excitation scaling."""
CONCATS = frozenset({"cat", "concat", "stack"})
SIZE, SMALL, LINE = 11.0, 10.0, 14.0  # font sizes and line height, px
PAD_X, PAD_Y, RADIUS = 8.0, 6.0, 10.0  # box padding and merge-circle radius, px
MARGIN, TITLE_H = 16.0, 44.0


@dataclass(frozen=True)
class DiagramNode:
    """One box: a collapsed block (or an operation of an opened block), with its place in the drawing (top left
    ``x``, ``y``; size ``w``, ``h``; px). ``role``: input, block, merge (an addition or product), concat, aux."""

    key: str
    path: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    rf: tuple[int, int] | None
    jump: tuple[int, int] | None
    role: str
    lines: tuple[str, ...]
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom)."""
        return self.x, self.y, self.x + self.w, self.y + self.h


@dataclass(frozen=True)
class DiagramEdge:
    source: str  # node keys
    target: str
    points: tuple[tuple[float, float], ...]
    dashed: bool = False  # into an auxiliary head


@dataclass(frozen=True)
class Diagram:
    """What :func:`diagram` returns: the analyzer's report, the boxes and arrows, and ``svg()`` / ``save()``."""

    report: ModelReport
    depth: int
    expand: tuple[str, ...]
    show_rf: bool
    direction: Direction
    nodes: list[DiagramNode]
    edges: list[DiagramEdge]
    width: float
    height: float

    @property
    def blocks(self) -> list[DiagramNode]:
        """The nodes without the input: one per collapsed block."""
        return [n for n in self.nodes if n.role != "input"]

    def node(self, path: str) -> DiagramNode:
        for n in self.nodes:
            if n.path == path:
                return n
        raise AnalysisError(f"no node {path!r} in the diagram of {self.report.model}")

    def scene(self) -> Scene:
        r = self.report
        title = f"{r.model}, input {'x'.join(map(str, r.input_size))}"
        totals = f"{r.params:,} params, {format_macs(r.macs)}, receptive field {r.rf_label}, depth {r.depth}"
        scene = Scene(self.width, self.height, title=f"{title}: {totals}")
        scene.items += [Text(MARGIN, MARGIN + 12, title, size=13, bold=True, anchor="start"),
                        Text(MARGIN, MARGIN + 28, totals, size=SIZE, anchor="start", color="#4b5563")]  # fmt: skip
        by_key = {n.key: n for n in self.nodes}
        for e in self.edges:
            scene.items.append(Arrow(_clipped(e.points, by_key[e.source], by_key[e.target]), dashed=e.dashed))
        scene.items += [_node_group(n) for n in self.nodes]
        return scene

    def svg(self) -> str:
        """One self-contained ``<svg>`` element; each node is a ``<g class="node" data-path=...>``."""
        return self.scene().svg()

    def save(self, path: str | Path) -> Path:
        """Write the drawing as SVG or PNG, by the file's suffix."""
        path = Path(path)
        if path.suffix.lower() == ".svg":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.svg())
            return path
        if path.suffix.lower() == ".png":
            return self.scene().png(path)
        raise AnalysisError(f"a diagram is written as .svg or .png, not {path.name!r}")


def diagram(
    model: nn.Module,
    input_size: InputSize | None = None,
    *,
    depth: int = 1,
    expand: Sequence[str] = (),
    rf: bool = False,
    direction: Direction = "TB",
) -> Diagram:
    """Draw ``model`` (see the module docstring): blocks cut to ``depth`` path components, the blocks named in
    ``expand`` opened, receptive fields shown with ``rf``, laid out top-down (``"TB"``) or left to right (``"LR"``)."""
    if depth < 1:
        raise AnalysisError(f"depth must be >= 1, got {depth}")
    if direction not in ("TB", "LR"):
        raise AnalysisError(f"direction is TB or LR, got {direction!r}")
    report, walk = analyze_graph(model, input_size)
    expand = tuple(expand)
    for block in expand:
        if block not in report.module_kinds:
            near = difflib.get_close_matches(block, list(report.module_kinds), n=4)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise AnalysisError(f"no block {block!r} in {report.model}{hint}")
    nodes, edges = _graph(model, report, walk, depth, expand)
    nodes = [replace(n, lines=_label_lines(n, _detail(model, n.path), rf)) for n in nodes]
    sizes = {n.key: _box_size(n) for n in nodes}
    layout = layered_layout(sizes, [(a, b) for a, b, _ in edges], direction=direction)
    title_w = text_width(f"{report.params:,} params, {format_macs(report.macs)}, receptive field 0000, depth 000", SIZE)
    placed = []
    for n in nodes:
        (cx, cy), (w, h) = layout.centres[n.key], sizes[n.key]
        placed.append(replace(n, x=MARGIN + cx - w / 2, y=MARGIN + TITLE_H + cy - h / 2, w=w, h=h))
    shift = (MARGIN, MARGIN + TITLE_H)
    arrows = [
        DiagramEdge(a, b, tuple((x + shift[0], y + shift[1]) for x, y in layout.routes[(a, b)]), dashed)
        for a, b, dashed in edges
    ]
    width = max(layout.width, title_w) + 2 * MARGIN
    height = layout.height + TITLE_H + 2 * MARGIN
    return Diagram(report, depth, expand, rf, direction, placed, arrows, width, height)


# -- the graph of blocks -----------------------------------------------------------------------------------


def _key(
    model: nn.Module, path: str, name: str, depth: int, expand: tuple[str, ...], outputs: dict[str, tuple[int, ...]]
) -> tuple[str, str]:
    """(node key, node path) of the operation ``name`` at ``path``; ``outputs``: each module's output shape."""
    parts = path.split(".")
    for block in expand:
        head = block.split(".")
        if parts[: len(head)] == head:  # inside an opened block: its operations, conv-norm-act units whole
            for n in range(len(head) + 1, len(parts) + 1):
                unit = ".".join(parts[:n])
                if isinstance(_module(model, unit), ATOMIC):
                    return unit, unit
            return name, path
    cut = depth
    for block in expand:  # the blocks around an opened one open down to its siblings
        common = 0
        for a, b in zip(parts, block.split("."), strict=False):
            if a != b:
                break
            common += 1
        if common:
            cut = max(cut, common + 1)
    if "." not in path and _module(model, path) is None:  # a function in the model's own forward
        return name, path
    while cut < len(parts) and _opens(model, ".".join(parts[:cut]), outputs):
        cut += 1
    return group_path(path, cut), group_path(path, cut)


def _opens(model: nn.Module, path: str, outputs: dict[str, tuple[int, ...]]) -> bool:
    """Whether the module at ``path`` is a stage of different blocks: an ``nn.Sequential`` whose children with
    parameters differ in class or output shape (a stage that repeats one block, its first one downsampling in
    the block's own layers, stays one box)."""
    stage = _module(model, path)
    if type(stage) is not nn.Sequential:
        return False
    blocks = {
        (type(m), outputs.get(f"{path}.{n}"))
        for n, m in stage.named_children()
        if next(m.parameters(), None) is not None
    }
    return len(blocks) > 1


def _output_shapes(report: ModelReport) -> dict[str, tuple[int, ...]]:
    """The output shape of every module that runs: its last operation's."""
    shapes: dict[str, tuple[int, ...]] = {}
    for row in report.layers:
        parts = row.path.split(".")
        for n in range(1, len(parts) + 1):
            shapes[".".join(parts[:n])] = row.output_shape
    return shapes


def _module(model: nn.Module, path: str) -> nn.Module | None:
    try:
        return model.get_submodule(path)
    except AttributeError:
        return None


def _graph(
    model: nn.Module, report: ModelReport, walk: GraphWalk, depth: int, expand: tuple[str, ...]
) -> tuple[list[DiagramNode], list[tuple[str, str, bool]]]:
    groups: dict[str, tuple[str, list[int]]] = {}
    key_of: dict[str, str] = {}  # fx node name -> node key
    outputs = _output_shapes(report)
    for i, rec in enumerate(walk.records):
        key, path = _key(model, rec.path, rec.name, depth, expand, outputs)
        groups.setdefault(key, (path, []))[1].append(i)
        key_of[rec.name] = key
    shape = (1, *report.input_size)
    nodes = [DiagramNode("input", "input", "input", shape, 0, 0, (1, 1), (1, 1), "input", ())]
    for key, (path, idx) in groups.items():
        row = report.merged(path, [report.layers[i] for i in idx])
        kind, single = row.kind, len(idx) == 1  # one function, not a block holding one
        role = "merge" if single and kind in MERGES else "concat" if single and kind in CONCATS else "block"
        nodes.append(DiagramNode(key, path, kind, row.output_shape, row.params, row.macs, row.rf, row.jump, role, ()))
    edges = {
        (key_of.get(src, "input"), key_of[rec.name]): False
        for rec in walk.records
        for src in rec.inputs
        if key_of.get(src, "input") != key_of[rec.name]
    }
    for node in [n for n in nodes if n.kind == "Identity" and n.params == 0]:  # pass-through: joined across
        ins = [a for a, b in edges if b == node.key]
        outs = [b for a, b in edges if a == node.key]
        edges = {e: d for e, d in edges.items() if node.key not in e} | {(a, b): False for a in ins for b in outs}
        nodes.remove(node)
    for aux in report.auxiliary:
        nodes.append(DiagramNode(aux.path, aux.path, aux.kind, aux.output_shape, aux.params, aux.macs, None, None,
                                 "aux", ()))  # fmt: skip
        source = _tap_node(report.taps.get(aux.path, []), walk, key_of)
        if source is not None:
            edges[(source, aux.path)] = True
    return nodes, [(a, b, dashed) for (a, b), dashed in edges.items()]


def _tap_node(taps: Sequence[str], walk: GraphWalk, key_of: dict[str, str]) -> str | None:
    """The node that produced the auxiliary head's input: the last operation of its innermost tap module."""
    for tap in taps:
        inside = [r for r in walk.records if r.path == tap or r.path.startswith(tap + ".")]
        if inside:
            return key_of[inside[-1].name]
    return None


# -- boxes and labels --------------------------------------------------------------------------------------


def _detail(model: nn.Module, path: str) -> str:
    """A conv's or pool's kernel, stride and dilation, as the papers label them: ``3x3/2``, ``3x3 d2``."""
    module = _module(model, path)
    if module is None:
        return ""
    if type(module) is nn.Sequential:  # a stage: what it holds ("4 x Bottleneck")
        runs: list[list] = []
        for child in module.children():
            if runs and runs[-1][0] == type(child).__name__:
                runs[-1][1] += 1
            else:
                runs.append([type(child).__name__, 1])
        return ", ".join(f"{n} x {k}" if n > 1 else k for k, n in runs) if len(runs) <= 2 else f"{len(module)} modules"
    if isinstance(module, ATOMIC):
        module = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), module)
    if not isinstance(module, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
        return ""
    k, s = _pair(module.kernel_size), _pair(module.stride if module.stride is not None else module.kernel_size)
    d = _pair(getattr(module, "dilation", 1))
    text = f"{k[0]}x{k[1]}" + (f"/{s[0]}" if s == (s[0], s[0]) and s[0] > 1 else f"/{s[0]}x{s[1]}" if s[0] > 1 else "")
    return text + (f" d{d[0]}" if d[0] > 1 else "")


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _label_lines(n: DiagramNode, detail: str, show_rf: bool) -> tuple[str, ...]:
    shape = shape_label(n.output_shape)
    if n.role == "input":
        return ("input", shape)
    if n.role == "merge":
        return (n.kind, shape)
    kind = f"{n.kind}: {detail}" if n.kind == "Sequential" and detail else f"{n.kind} {detail}".strip()
    lines = [n.path] if n.path == kind else [n.path, kind]
    lines.append(shape if n.role != "aux" else f"{shape} (training only)")
    if n.params or n.macs:
        lines.append(f"{format_count(n.params)} params, {format_macs(n.macs)}")
    if show_rf and n.role != "aux":
        rf = "?" if n.rf is None else str(n.rf[0]) if n.rf[0] == n.rf[1] else f"{n.rf[0]}x{n.rf[1]}"
        jump = "?" if n.jump is None else str(n.jump[0])
        lines.append(f"RF {rf}, jump {jump}")
    return tuple(lines)


def _box_size(n: DiagramNode) -> tuple[float, float]:
    if n.role == "merge":
        text = max(text_width(line, SMALL) for line in n.lines)
        return 2 * (RADIUS + 4 + text), max(2 * RADIUS, len(n.lines) * (SMALL + 2)) + 4
    return max(text_width(line, SIZE) for line in n.lines) + 2 * PAD_X, len(n.lines) * LINE + 2 * PAD_Y


def _fill(n: DiagramNode) -> str:
    kind = n.kind
    if n.role == "aux":
        return "#fef3c7"
    if n.role in ("input", "concat"):
        return "#e5e7eb"
    if kind in ("Conv2d", "ConvBnAct", "Linear") or "Conv" in kind:
        return "#dbeafe"
    if "Pool" in kind or "pool" in kind:
        return "#ffedd5"
    if "Head" in kind or "Classifier" in kind:
        return "#ede9fe"
    if "Norm" in kind or kind in ("ReLU", "ReLU6", "SiLU", "GELU", "Sigmoid", "Dropout", "Flatten", "flatten"):
        return "#f3f4f6"
    return "#dcfce7"


def _node_group(n: DiagramNode) -> Group:
    shapes: list[Shape] = []
    if n.role == "merge":
        cx, cy = n.centre
        shapes += [Circle(cx, cy, RADIUS), Text(cx, cy + 4, MERGES[n.kind], size=13, bold=True)]
        top = cy - len(n.lines) * (SMALL + 2) / 2 + SMALL - 1
        shapes += [
            Text(cx + RADIUS + 4, top + i * (SMALL + 2), line, size=SMALL, anchor="start", color="#374151")
            for i, line in enumerate(n.lines)
        ]
    else:
        shapes.append(Rect(n.x, n.y, n.w, n.h, fill=_fill(n), dashed=n.role == "aux"))
        cx = n.x + n.w / 2
        shapes += [
            Text(cx, n.y + PAD_Y + (i + 1) * LINE - 3.5, line, size=SIZE, bold=i == 0, color="#111827")
            for i, line in enumerate(n.lines)
        ]
    rf = "?" if n.rf is None else f"{n.rf[0]}"
    tooltip = (
        f"{n.path} ({n.kind}): output {shape_label(n.output_shape)}, {n.params:,} params, {n.macs:,} MACs, RF {rf}"
    )
    return Group(tuple(shapes), "node", (("path", n.path), ("kind", n.kind), ("role", n.role)), tooltip)


def _clipped(points: Sequence[tuple[float, float]], source: DiagramNode, target: DiagramNode) -> tuple:
    """The route with its ends moved from the box centres to the box (or circle) borders."""
    pts = list(points)
    pts[0] = _border(source, pts[0], next((p for p in pts[1:] if p != pts[0]), pts[-1]))
    pts[-1] = _border(target, pts[-1], next((p for p in reversed(pts[:-1]) if p != pts[-1]), pts[0]))
    kept = [pts[0]]
    for p in pts[1:]:  # no zero-length segments: an arrow head needs a direction
        if abs(p[0] - kept[-1][0]) + abs(p[1] - kept[-1][1]) > 0.5:
            kept.append(p)
    if len(kept) == 1:
        kept.append(pts[-1])
    elif kept[-1] != pts[-1]:
        kept[-1] = pts[-1]
    return tuple(kept)


def _border(n: DiagramNode, centre: tuple[float, float], toward: tuple[float, float]) -> tuple[float, float]:
    (cx, cy), (tx, ty) = centre, toward
    dx, dy = tx - cx, ty - cy
    length = (dx * dx + dy * dy) ** 0.5
    if length == 0:
        return centre
    if n.role == "merge":
        t = RADIUS / length
    else:
        t = min(n.w / 2 / abs(dx) if dx else float("inf"), n.h / 2 / abs(dy) if dy else float("inf"))
    t = min(t, 1.0)
    return cx + t * dx, cy + t * dy
