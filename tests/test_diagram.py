"""``cnnlab.diagram`` and ``cnnlab diagram``: one box per collapsed block (counted independently from the model's
modules), the merges where the papers draw them, and a drawing that is readable: no two boxes overlap, no arrow
crosses a box, every label fits in its box."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

import cnnlab
from cnnlab.analysis.diagram import Diagram, DiagramNode
from cnnlab.analysis.scene import text_width
from cnnlab.cli import main
from cnnlab.errors import AnalysisError


def meta(name: str) -> nn.Module:
    with torch.device("meta"):
        return cnnlab.create_model(name)


def children(model: nn.Module, prefix: str = "") -> list[str]:
    """The paths of a module's children that do something (identities pass their input on)."""
    module = model.get_submodule(prefix) if prefix else model
    return [f"{prefix}.{n}" if prefix else n for n, m in module.named_children() if not isinstance(m, nn.Identity)]


def overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def segment_hits(p: tuple[float, float], q: tuple[float, float], box: tuple[float, ...], inset: float = 1.0) -> bool:
    """Liang-Barsky: does the segment p-q enter the box shrunk by ``inset``?"""
    x0, y0, x1, y1 = box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset
    dx, dy = q[0] - p[0], q[1] - p[1]
    lo, hi = 0.0, 1.0
    for d, start, low, high in ((dx, p[0], x0, x1), (dy, p[1], y0, y1)):
        if d == 0:
            if not low < start < high:
                return False
            continue
        t0, t1 = sorted(((low - start) / d, (high - start) / d))
        lo, hi = max(lo, t0), min(hi, t1)
    return lo < hi


def assert_readable(d: Diagram) -> None:
    nodes = d.nodes
    for i, a in enumerate(nodes):
        assert a.x >= 0 and a.y >= 0 and a.x + a.w <= d.width and a.y + a.h <= d.height
        for b in nodes[i + 1 :]:
            assert not overlaps(a.box, b.box), (a.path, b.path)
    for n in nodes:
        size = 10.0 if n.role == "merge" else 11.0
        assert max(text_width(line, size) for line in n.lines) <= n.w, n.path
    by_key = {n.key: n for n in nodes}
    for e in d.edges:
        others: list[DiagramNode] = [n for n in nodes if n.key not in (e.source, e.target)]
        for p, q in itertools.pairwise(e.points):
            hit = [n.path for n in others if segment_hits(p, q, n.box)]
            assert not hit, f"{by_key[e.source].path} -> {by_key[e.target].path} crosses {hit}"


def test_googlenet_at_depth_1_has_one_box_per_row_of_table_1_and_its_aux_heads_hang_off_4a_and_4d() -> None:
    """Szegedy et al. 2015, Table 1: the stem's convs and pools, each Inception module (3a ... 5b) and the pools
    between them, one box each; the model keeps 4b-4d in one stage (the auxiliary heads tap 4a and 4d), which the
    drawing opens because its modules differ."""
    model = meta("googlenet")
    d = cnnlab.diagram(model, depth=1)
    table_1 = ["stem.conv1", "stem.pool1", "stem.conv2", "stem.conv3", "inception3.pool", "inception3.a",
               "inception3.b", "inception4a", "inception4d.b", "inception4d.c", "inception4d.d", "inception4e",
               "inception5.pool", "inception5.a", "inception5.b", "head", "aux1", "aux2"]  # fmt: skip
    assert [n.path for n in d.blocks] == table_1
    modules = ("inception3.a", "inception3.b", "inception4d.b", "inception4d.c", "inception4d.d", "inception5.b")
    assert [d.node(p).output_shape[1] for p in modules] == [256, 480, 512, 512, 528, 1024]  # Table 1's depths
    assert d.node("inception4a").kind == "Sequential" and d.node("inception4d.b").kind == "InceptionV1"
    dashed = {(d.node(e.source).path if e.source != "input" else "input", e.target) for e in d.edges if e.dashed}
    assert dashed == {("inception4a", "aux1"), ("inception4d.d", "aux2")}
    assert d.node("aux1").params == 3_188_968
    assert sum(n.params for n in d.blocks) == d.report.params == 13_004_888  # every parameter is in a box
    assert_readable(d)


def test_a_stage_of_repeated_blocks_is_one_box_and_a_stage_of_different_blocks_opens() -> None:
    """ResNet-50's layer1 (3 x Bottleneck), VGG-16's stages (convs of one width and a pool) stay whole; DenseNet's
    transition and dense block and Inception-v4's reduction and its blocks are drawn apart, as the papers do."""
    d = cnnlab.diagram(meta("resnet50"), depth=1)
    assert [n.path for n in d.blocks] == ["stem", "pool", "layer1", "layer2", "layer3", "layer4", "head"]
    assert "3 x Bottleneck" in d.node("layer1").lines[1]
    d = cnnlab.diagram(meta("vgg16"), depth=1)
    assert [n.path for n in d.blocks] == [*(f"stage{i}" for i in range(1, 6)), "head"]
    d = cnnlab.diagram(meta("densenet121"), depth=1)
    assert [n.path for n in d.blocks][2:5] == ["stage1", "stage2.transition", "stage2.block"]


def test_an_opened_residual_unit_shows_the_shortcut_meeting_the_convs_at_the_addition() -> None:
    model = meta("resnet50")
    d = cnnlab.diagram(model, expand=["layer1.0"])
    unit = children(model, "layer1.0")  # conv1, conv2, conv3, shortcut, act (attn is an identity) and the add
    expected = [*children(model)[:2], *unit, "layer1.0.add", *children(model, "layer1")[1:], *children(model)[3:]]
    assert sorted(n.path for n in d.blocks) == sorted(expected) and len(d.blocks) == 14
    add = d.node("layer1.0.add")
    assert add.role == "merge" and add.output_shape == (1, 256, 56, 56)
    into_add = sorted(d.node(e.source).path for e in d.edges if e.target == add.key)
    assert into_add == ["layer1.0.conv3", "layer1.0.shortcut"]
    assert d.node("layer1.0.conv2").lines[1] == "ConvBnAct 3x3"  # a conv-norm-act unit is one box
    assert d.node("layer1.1").kind == "Bottleneck"
    assert_readable(d)


def test_an_opened_inception_module_shows_four_branches_meeting_at_the_concatenation() -> None:
    d = cnnlab.diagram(meta("googlenet"), expand=["inception4a"], rf=True)
    cat = d.node("inception4a.a.cat")
    assert cat.role == "concat" and cat.output_shape == (1, 512, 14, 14)
    branches = sorted(d.node(e.source).path for e in d.edges if e.target == cat.key)
    assert branches == [f"inception4a.a.{b}" for b in ("branch1x1", "branch3x3.1", "branch5x5.1", "branch_pool.1")]
    assert d.node("inception4a.pool").lines[-1] == "RF 75, jump 16"
    assert_readable(d)


INCEPTION_V4_FIG_9 = ["stem", "stage_a", "stage_b.reduction", "stage_b.blocks", "stage_c.reduction",
                      "stage_c.blocks", "head"]  # 4 x Inception-A, Reduction-A, 7 x Inception-B, ...  # fmt: skip


@pytest.mark.parametrize(("name", "depth", "blocks"), [("resnet152", 1, 7), ("resnet152", 2, 58),
                                                       ("inception_v4", 1, 7), ("inception_v4", 2, 18)])  # fmt: skip
def test_the_largest_models_are_readable(name: str, depth: int, blocks: int) -> None:
    model = meta(name)
    d = cnnlab.diagram(model, depth=depth)
    assert len(d.blocks) == blocks
    if depth == 1:
        assert [n.path for n in d.blocks] == (children(model) if name == "resnet152" else INCEPTION_V4_FIG_9)
    assert_readable(d)


def test_left_to_right_and_the_svg_and_png_files(tmp_path: Path) -> None:
    d = cnnlab.diagram(meta("resnet18"), direction="LR", rf=True)
    assert d.width > d.height
    assert_readable(d)
    svg = ET.fromstring(d.svg())
    ns = {"s": "http://www.w3.org/2000/svg"}
    groups = svg.findall(".//s:g[@class='node']", ns)
    assert [g.get("data-path") for g in groups] == [n.path for n in d.nodes]
    png = d.save(tmp_path / "r18.png")
    with Image.open(png) as image:
        assert all(abs(got - want * 1.5) <= 1 for got, want in zip(image.size, (d.width, d.height), strict=True))
    with pytest.raises(AnalysisError, match=r"\.svg or \.png"):
        d.save(tmp_path / "r18.pdf")


def test_diagram_errors_name_the_blocks() -> None:
    with pytest.raises(AnalysisError, match=r"no block 'layer1\.x' in resnet18; did you mean .*layer1\.0"):
        cnnlab.diagram(meta("resnet18"), expand=["layer1.x"])
    with pytest.raises(AnalysisError, match="depth must be >= 1"):
        cnnlab.diagram(meta("resnet18"), depth=0)


def test_diagram_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "g.svg"
    assert main(["diagram", "googlenet", "--depth", "1", "--out", str(out)]) == 0
    assert f"wrote {out}: 18 blocks" in capsys.readouterr().out
    assert ET.parse(out).getroot().tag.endswith("svg")
    assert main(["diagram", "resnet50", "--expand", "layer1.0", "--out", str(tmp_path / "r.png")]) == 0
    assert "14 blocks" in capsys.readouterr().out
    drawn = cnnlab.diagram(meta("resnet50"), expand=["layer1.0"])
    with Image.open(tmp_path / "r.png") as image:  # the same drawing, at 1.5 px per unit
        assert all(
            abs(got - want * 1.5) <= 1 for got, want in zip(image.size, (drawn.width, drawn.height), strict=True)
        )
    assert main(["diagram", "cifar_resnet20", "--model-kwargs", '{"attn_layer": "se"}',
                 "--out", str(tmp_path / "c.svg")]) == 0  # fmt: skip
    assert main(["diagram", "resnet18", "--expand", "nope"]) == 2
    assert "no block 'nope'" in capsys.readouterr().err
