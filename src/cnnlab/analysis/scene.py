"""A small vector drawing: boxes, circles, text and arrows, written as SVG by hand or drawn as a PNG by matplotlib.

The SVG needs nothing but this module (one self-contained ``<svg>`` element, which an HTML page can inline);
the PNG draws the same shapes at the same pixel coordinates with matplotlib's Agg backend. Text is monospaced
(DejaVu Sans Mono, which matplotlib ships), so a label's width is known before it is drawn: :func:`text_width`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path

FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
CHAR_EM = 0.602  # DejaVu Sans Mono's advance width in ems (Menlo 0.602, Consolas 0.55: never wider)
EDGE = "#6b7280"


def text_width(text: str, size: float) -> float:
    """The width in pixels of ``text`` at font ``size`` pixels."""
    return len(text) * size * CHAR_EM


@dataclass(frozen=True)
class Rect:
    x: float  # top left
    y: float
    w: float
    h: float
    fill: str = "#ffffff"
    stroke: str = "#374151"
    dashed: bool = False
    radius: float = 5.0


@dataclass(frozen=True)
class Circle:
    cx: float
    cy: float
    r: float
    fill: str = "#ffffff"
    stroke: str = "#374151"


@dataclass(frozen=True)
class Text:
    x: float
    y: float  # the baseline
    text: str
    size: float = 11.0
    bold: bool = False
    anchor: str = "middle"  # start, middle or end
    color: str = "#111827"


@dataclass(frozen=True)
class Arrow:
    points: tuple[tuple[float, float], ...]
    dashed: bool = False
    color: str = EDGE


Shape = Rect | Circle | Text | Arrow


@dataclass(frozen=True)
class Group:
    """Shapes that belong together (one node): an SVG ``<g>`` with a class, ``data-*`` attributes and a tooltip."""

    shapes: tuple[Shape, ...]
    css_class: str = ""
    data: tuple[tuple[str, str], ...] = ()
    tooltip: str = ""


@dataclass
class Scene:
    width: float
    height: float
    items: list[Shape | Group] = field(default_factory=list)
    title: str = ""

    def shapes(self) -> list[Shape]:
        return [s for item in self.items for s in (item.shapes if isinstance(item, Group) else (item,))]

    # -- SVG ----------------------------------------------------------------------------------------------
    def svg(self) -> str:
        w, h = round(self.width), round(self.height)
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'font-family="{FONT}" class="cnnlab-diagram">'
        )
        defs = (
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{EDGE}"/></marker></defs>'
        )
        parts = [head, f"<title>{escape(self.title)}</title>" if self.title else "", defs]
        parts.append(f'<rect width="{w}" height="{h}" fill="#ffffff"/>')
        for item in self.items:
            parts.append(_svg_group(item) if isinstance(item, Group) else _svg_shape(item))
        parts.append("</svg>")
        return "\n".join(p for p in parts if p)

    # -- PNG ----------------------------------------------------------------------------------------------
    def png(self, path: str | Path, *, scale: float = 1.5) -> Path:
        """The same drawing as a PNG, ``scale`` pixels per SVG pixel (matplotlib, Agg backend)."""
        from matplotlib import patches

        from cnnlab.plotting import pyplot

        plt = pyplot()
        dpi = 100.0 * scale
        fig = plt.figure(figsize=(self.width / 100.0, self.height / 100.0), dpi=dpi)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, self.width)
        ax.set_ylim(self.height, 0)
        ax.axis("off")
        points = 72.0 / 100.0  # font size in points for one SVG pixel at 100 px per inch
        for s in self.shapes():
            if isinstance(s, Rect):
                style = f"round,pad=0,rounding_size={s.radius}" if s.radius else "square,pad=0"
                ax.add_patch(
                    patches.FancyBboxPatch(
                        (s.x, s.y), s.w, s.h, boxstyle=style, fc=s.fill, ec=s.stroke, lw=1.0,
                        ls=(0, (4, 3)) if s.dashed else "-",
                    )
                )  # fmt: skip
            elif isinstance(s, Circle):
                ax.add_patch(patches.Circle((s.cx, s.cy), s.r, fc=s.fill, ec=s.stroke, lw=1.0))
            elif isinstance(s, Text):
                ha = {"start": "left", "middle": "center", "end": "right"}[s.anchor]
                ax.text(
                    s.x, s.y, s.text, fontsize=s.size * points, family="DejaVu Sans Mono", ha=ha, va="baseline",
                    color=s.color, fontweight="bold" if s.bold else "normal",
                )  # fmt: skip
            else:
                xs, ys = zip(*s.points, strict=True)
                ls = (0, (4, 3)) if s.dashed else "-"
                ax.plot(xs[:-1], ys[:-1], color=s.color, lw=1.1, ls=ls, solid_capstyle="butt")
                ax.annotate(
                    "", xy=s.points[-1], xytext=s.points[-2],
                    arrowprops={"arrowstyle": "-|>", "color": s.color, "lw": 1.1, "ls": ls, "shrinkA": 0, "shrinkB": 0},
                )  # fmt: skip
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, facecolor="white")
        plt.close(fig)
        return path


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _svg_shape(s: Shape) -> str:
    if isinstance(s, Rect):
        dash = ' stroke-dasharray="4 3"' if s.dashed else ""
        return (
            f'<rect x="{_num(s.x)}" y="{_num(s.y)}" width="{_num(s.w)}" height="{_num(s.h)}" rx="{_num(s.radius)}" '
            f'fill="{s.fill}" stroke="{s.stroke}"{dash}/>'
        )
    if isinstance(s, Circle):
        return f'<circle cx="{_num(s.cx)}" cy="{_num(s.cy)}" r="{_num(s.r)}" fill="{s.fill}" stroke="{s.stroke}"/>'
    if isinstance(s, Text):
        weight = ' font-weight="bold"' if s.bold else ""
        return (
            f'<text x="{_num(s.x)}" y="{_num(s.y)}" font-size="{_num(s.size)}" text-anchor="{s.anchor}" '
            f'fill="{s.color}"{weight}>{escape(s.text)}</text>'
        )
    d = " ".join(f"{'M' if i == 0 else 'L'}{_num(x)},{_num(y)}" for i, (x, y) in enumerate(s.points))
    dash = ' stroke-dasharray="4 3"' if s.dashed else ""
    return (
        f'<path class="edge" d="{d}" fill="none" stroke="{s.color}" stroke-width="1.2" stroke-linejoin="round"'
        f'{dash} marker-end="url(#arrow)"/>'
    )


def _svg_group(g: Group) -> str:
    attrs = f' class="{escape(g.css_class)}"' if g.css_class else ""
    attrs += "".join(f' data-{k}="{escape(v)}"' for k, v in g.data)
    tooltip = f"<title>{escape(g.tooltip)}</title>" if g.tooltip else ""
    return f"<g{attrs}>{tooltip}" + "".join(_svg_shape(s) for s in g.shapes) + "</g>"
