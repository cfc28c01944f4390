"""A layered (Sugiyama) layout of a directed graph of boxes, by grandalf (pure Python, no system binaries).

grandalf ranks the vertices (longest path from the roots), adds a dummy vertex wherever an edge spans several
ranks, orders each rank to reduce crossings and places the vertices with Brandes and Köpf's algorithm, so that
the boxes of one rank sit ``xspace`` apart and the ranks ``yspace`` apart. The edges are routed here through
their dummy vertices: straight across each rank's band and bent only in the gaps between ranks, so that an
edge never crosses a box. ``direction="LR"`` lays the same ranks out from left to right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["TB", "LR"]
Point = tuple[float, float]


@dataclass
class _VertexView:
    w: float
    h: float
    xy: Point = (0.0, 0.0)


class _EdgeView:
    def setpath(self, pts: list[Point]) -> None:  # grandalf's edge routing hook; the routes are made below
        self.points = pts


@dataclass(frozen=True)
class Layout:
    """Box centres by key, edge routes (centre to centre, through the gaps between ranks) and the drawing's size."""

    centres: dict[str, Point]
    routes: dict[tuple[str, str], list[Point]]
    width: float
    height: float


def layered_layout(
    sizes: Mapping[str, tuple[float, float]],
    edges: Sequence[tuple[str, str]],
    *,
    direction: Direction = "TB",
    xspace: float = 28.0,
    yspace: float = 34.0,
) -> Layout:
    """Lay out the boxes ``sizes`` (key -> (width, height)) joined by ``edges`` (source key, target key)."""
    from grandalf.graphs import Edge, Graph, Vertex
    from grandalf.layouts import SugiyamaLayout

    flip = direction == "LR"
    vertices = {}
    for key, (w, h) in sizes.items():
        v = Vertex(key)
        v.view = _VertexView(h, w) if flip else _VertexView(w, h)
        vertices[key] = v
    grandalf_edges = []
    for a, b in dict.fromkeys(e for e in edges if e[0] != e[1]):
        e = Edge(vertices[a], vertices[b])
        e.view = _EdgeView()
        grandalf_edges.append(e)
    graph = Graph(list(vertices.values()), grandalf_edges)
    centres: dict[str, Point] = {}
    routes: dict[tuple[str, str], list[Point]] = {}
    offset, height = 0.0, 0.0
    for component in graph.C:  # one layout per connected part, side by side
        sug = SugiyamaLayout(component)
        sug.xspace, sug.yspace = xspace, yspace
        sug.dw, sug.dh = 6.0, 1.0  # dummy vertices: an edge's width, not a box's
        sug.init_all(roots=[v for v in component.sV if not v.e_in()])
        sug.draw()
        part = _routes(sug, component)
        boxes = [(v.view.xy[0] - v.view.w / 2, v.view.xy[0] + v.view.w / 2) for v in component.sV]
        points = [p for route in part.values() for p in route]
        left = min([lo for lo, _ in boxes] + [x for x, _ in points])
        right = max([hi for _, hi in boxes] + [x for x, _ in points])
        for v in component.sV:
            centres[v.data] = (v.view.xy[0] - left + offset, v.view.xy[1])
            height = max(height, v.view.xy[1] + v.view.h / 2)
        for key, route in part.items():
            routes[key] = [(x - left + offset, y) for x, y in route]
        offset += right - left + xspace
    width = max(offset - xspace, 0.0)
    if flip:
        centres = {k: (y, x) for k, (x, y) in centres.items()}
        routes = {k: [(y, x) for x, y in r] for k, r in routes.items()}
        width, height = height, width
    return Layout(centres, routes, width, height)


def _routes(sug: Any, component: Any) -> dict[tuple[str, str], list[Point]]:
    """Each edge from its upper to its lower end: down the upper box's rank band, through each dummy vertex's
    band, into the lower box's band; then reversed for an edge that grandalf inverted to break a cycle."""
    bands = []  # (top, bottom) of each rank
    for layer in sug.layers:
        y = layer[0].view.xy[1]
        half = max(v.view.h for v in layer) / 2
        bands.append((y - half, y + half))
    out: dict[tuple[str, str], list[Point]] = {}
    for e in component.sE:
        v0, v1 = e.v
        upper, lower = (v0, v1) if sug.grx[v0].rank <= sug.grx[v1].rank else (v1, v0)
        r0, r1 = sug.grx[upper].rank, sug.grx[lower].rank
        (x0, y0), (x1, y1) = upper.view.xy, lower.view.xy
        route = [(x0, y0), (x0, bands[r0][1])]
        for r in range(r0 + 1, r1):
            x = sug.ctrls[e][r].view.xy[0]
            route += [(x, bands[r][0]), (x, bands[r][1])]
        route += [(x1, bands[r1][0]), (x1, y1)]
        out[(v0.data, v1.data)] = route if upper is v0 else route[::-1]
    return out
