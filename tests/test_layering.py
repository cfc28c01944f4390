"""The layering of the packages: each package and top-level module of cnnlab says in its docstring what it may
import (a ``May import:`` paragraph), and the source (every import statement, also those inside functions)
imports nothing else; what they say is consistent with the order in ``cnnlab``'s own docstring."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import cnnlab

SRC = Path(cnnlab.__file__).parent


def unit_of(path: Path) -> str:
    """``cnnlab/train/engine.py`` -> ``train``; ``cnnlab/registry.py`` -> ``registry``; the package -> ``cnnlab``."""
    rel = path.relative_to(SRC).with_suffix("").parts
    return "cnnlab" if rel == ("__init__",) else rel[0]


def unit_doc(unit: str) -> str:
    path = SRC / "__init__.py" if unit == "cnnlab" else SRC / unit / "__init__.py"
    if not path.exists():
        path = SRC / f"{unit}.py"
    return ast.get_docstring(ast.parse(path.read_text())) or ""


def declared(doc: str) -> set[str]:
    """The units named in the docstring's ``May import:`` paragraph (``nothing from cnnlab.``: none)."""
    match = re.search(r"^May import:(.*?)(?:\n\s*\n|\Z)", doc, re.S | re.M)
    assert match, "no 'May import:' paragraph"
    return set(re.findall(r"cnnlab\.(\w+)", match.group(1)))


def imported(path: Path) -> set[str]:
    """The cnnlab units that ``path`` imports, at the top or inside a function."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    units = {n.split(".")[1] for n in names if n.startswith("cnnlab.")}
    return units - {unit_of(path)}


def order() -> list[set[str]]:
    """The levels of the diagram in ``cnnlab``'s docstring, lowest first."""
    doc = unit_doc("cnnlab")
    diagram = doc.split("::", 1)[1].strip().split("\n\n", 1)[0]
    return [{name.strip() for name in level.split(",")} for level in diagram.split("<-")]


UNITS = sorted({unit_of(p) for p in SRC.rglob("*.py")})


def test_the_diagram_holds_every_unit_once() -> None:
    levels = order()
    flat = [u for level in levels for u in level]
    assert sorted(flat) == sorted(set(UNITS) - {"cnnlab", "__main__"}) and len(flat) == len(set(flat))


@pytest.mark.parametrize("unit", UNITS)
def test_a_unit_imports_only_what_its_docstring_allows(unit: str) -> None:
    allowed = declared(unit_doc(unit))
    files = [SRC / f"{unit}.py"] if (SRC / f"{unit}.py").exists() else sorted((SRC / unit).rglob("*.py"))
    if unit == "cnnlab":
        files = [SRC / "__init__.py"]
    extra = {f.relative_to(SRC).as_posix(): imported(f) - allowed for f in files}
    assert not {f: u for f, u in extra.items() if u}, f"{unit} may import only {sorted(allowed)}"


@pytest.mark.parametrize("unit", sorted(set(UNITS) - {"cnnlab", "__main__"}))
def test_a_unit_may_import_only_units_to_its_left(unit: str) -> None:
    levels = order()
    level = next(i for i, names in enumerate(levels) if unit in names)
    below = set().union(*levels[:level])
    assert declared(unit_doc(unit)) <= below


def module_name(path: Path) -> str:
    """``cnnlab/models/base.py`` -> ``cnnlab.models.base``; a package's ``__init__.py`` -> the package."""
    parts = ("cnnlab", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def module_imports(path: Path, source: str | None = None) -> set[str]:
    """The cnnlab modules that ``path`` (or ``source`` in its place) imports, at the top or inside a function:
    ``import a.b``, ``from a import b`` (the module ``a.b`` where it is one, else the package ``a``), relative
    imports resolved."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {t for t in targets if t in MODULES} - {here}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_cycle_finder_finds_a_circle_hidden_in_a_function() -> None:
    """The checker itself: a chain is not a circle; a circle closed by imports inside a function (absolute or
    relative) is found: the one between models/base.py and models/features.py that this test replaced."""
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    hidden = "import torch\n\ndef f():\n    from cnnlab.models.base import CnnlabModel\n    from . import base\n"
    assert module_imports(SRC / "models" / "features.py", hidden) == {"cnnlab.models.base"}
    graph = {name: module_imports(path) for name, path in MODULES.items()}
    graph["cnnlab.models.features"] |= module_imports(SRC / "models" / "features.py", hidden)
    assert import_cycles(graph) == [["cnnlab.models.base", "cnnlab.models.features"]]


def test_no_import_cycles_between_modules() -> None:
    """No module of cnnlab imports, directly or through others, a module that imports it back: counting imports
    inside functions too, which only hide a circle (a package's ``__init__`` counts as the package)."""
    graph = {name: module_imports(path) for name, path in MODULES.items()}
    assert "cnnlab.models.base" in graph["cnnlab.models.resnet"]  # the graph is read as intended
    assert import_cycles(graph) == []
