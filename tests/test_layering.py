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
