"""The report of an experiment's results folder (``experiments/results/NAME/``), kept generic: its
``summary.md`` rendered (the table and the command), the verdicts wherever ``results.json`` holds some, and
every PNG plot of the folder."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from cnnlab.pages.page import Page, json_block, png_img, table


def is_experiment_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "summary.md").exists() or (path / "results.json").exists())


def find_verdicts(value: Any, where: str = "") -> list[tuple[str, Any]]:
    """Every ``verdict``/``verdicts`` entry in ``value`` (nested dicts and lists), with where it was."""
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            here = f"{where}.{k}" if where else str(k)
            if str(k).lower() in ("verdict", "verdicts"):
                found.append((here, v))
            else:
                found += find_verdicts(v, here)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += find_verdicts(v, f"{where}[{i}]")
    return found


def _verdict_html(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        keys = list(dict.fromkeys(k for v in value for k in v))
        return table(keys, [[_scalar(v.get(k)) for k in keys] for v in value])
    if isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values()):
        return table(["", "verdict"], [[k, _scalar(v)] for k, v in value.items()])
    return json_block(value)


def _scalar(v: Any) -> Any:
    return v if isinstance(v, str | int | float) or v is None else json.dumps(v)


def experiment_page(folder: str | Path) -> Page:
    import markdown

    folder = Path(folder)
    page = Page(f"experiment {folder.name}", str(folder.resolve()))
    summary = folder / "summary.md"
    inlined: set[str] = set()
    if summary.exists():
        html = markdown.markdown(summary.read_text(), extensions=["tables", "fenced_code"])

        def inline(m: re.Match[str]) -> str:  # the summary's own plots, as data
            image = folder / m.group(1)
            if not image.is_file() or image.suffix.lower() != ".png":
                return m.group(0)
            inlined.add(image.name)
            return f'src="data:image/png;base64,{base64.b64encode(image.read_bytes()).decode()}"'

        html = re.sub(r'src="([^":]+)"', inline, html).replace("<img ", '<img class="plot" ')
        page.add("Summary", html.replace("<table>", '<table class="sortable">'), note="summary.md")
    results = folder / "results.json"
    if results.exists():
        verdicts = find_verdicts(json.loads(results.read_text()))
        if verdicts:
            page.add("Verdicts", "".join(f"<h3>{where}</h3>{_verdict_html(v)}" for where, v in verdicts),
                     note="results.json")  # fmt: skip
    plots = sorted(p for p in folder.glob("*.png") if p.name not in inlined)
    if plots:
        page.add("Plots", "".join(f"<h3>{p.name}</h3>{png_img(p.read_bytes(), p.name)}" for p in plots))
    return page
