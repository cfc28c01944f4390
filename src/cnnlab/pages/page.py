"""One self-contained HTML page: styles and scripts inline, images as data URIs, nothing fetched from anywhere.

The page's script makes every ``table.sortable`` sortable by a click on a header (numbers by value; rows of a
tree keep their place under their parent), folds the rows of a tree table (``data-parent``) by depth, and
records every script error, failed image and ``console.error`` in ``window.__errors``. Opened with ``#test``
(or ``#test-sort``, which first sorts the first tree table by parameters), it writes a JSON check into
``<pre id="test-result">``: the errors, the diagram's nodes, the top rows' order and whether any two diagram
boxes overlap or a label leaves its box, as measured by the browser itself.
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).parent / "assets"  # page.css, record_errors.js (first in <head>), page.js (last in <body>)


def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


class Page:
    """A page of sections, written as one HTML file."""

    def __init__(self, title: str, *subtitle: str) -> None:
        self.title, self.subtitle = title, subtitle  # lines under the title
        self.sections: list[str] = []

    def add(self, heading: str, body: str, *, note: str = "") -> None:
        note_html = f'<p class="note">{escape(note)}</p>' if note else ""
        self.sections.append(f"<section><h2>{escape(heading)}</h2>{note_html}{body}</section>")

    def html(self) -> str:
        sub = f'<p class="sub">{"<br>".join(escape(s) for s in self.subtitle)}</p>' if self.subtitle else ""
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(self.title)}</title><style>{_asset('page.css')}</style>"
            f"<script>{_asset('record_errors.js')}</script></head>"
            f"<body><main><h1>{escape(self.title)}</h1>{sub}{''.join(self.sections)}</main>"
            f"<script>{_asset('page.js')}</script></body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.html(), encoding="utf-8")
        tmp.replace(path)  # a reader never sees half a page
        return path


def png_img(data: bytes, alt: str, *, css: str = "plot") -> str:
    """An ``<img>`` holding the PNG ``data`` itself."""
    return f'<img class="{css}" alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def plot_img(draw: Callable[[Path], Any], alt: str, *, css: str = "plot") -> str:
    """The PNG that ``draw(path)`` writes (one of cnnlab's plot functions), inlined."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plot.png"
        draw(path)
        return png_img(path.read_bytes(), alt, css=css)


def number_cell(value: float | None, text: str | None = None, *, key: str = "") -> str:
    """A right-aligned cell that sorts by ``value`` and shows ``text`` (the value with separators by default)."""
    if value is None:
        return '<td class="num" data-v="-1e300">-</td>'
    shown = text if text is not None else f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"
    data = f' data-key="{key}"' if key else ""
    return f'<td class="num"{data} data-v="{value!r}">{escape(shown)}</td>'


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, numeric: Sequence[bool] | None = None) -> str:
    """A flat sortable table; cells are values (numbers sort by value) or ready ``<td>`` strings."""
    numeric = numeric or [False] * len(headers)
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if n else f"<th>{escape(h)}</th>"
        for h, n in zip(headers, numeric, strict=True)
    )
    body = []
    for row in rows:
        cells = []
        for v in row:
            if isinstance(v, str) and v.startswith("<td"):
                cells.append(v)
            elif isinstance(v, int | float) and not isinstance(v, bool):
                cells.append(number_cell(v))
            else:
                cells.append(f"<td>{escape('' if v is None else str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def pre(text: str) -> str:
    return f"<pre>{escape(text)}</pre>"


def json_block(value: Any) -> str:
    return pre(json.dumps(value, indent=2, default=str))
