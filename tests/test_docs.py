"""The README and the pages in docs/: every relative link resolves, and the figures they quote are those of the
committed results (``experiments/results/*/results.json``, ``benchmarks/latest.json`` and ``latest.txt``) and of
the registry. Each check computes the figure from its source and looks for it, as the page writes it."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

import cnnlab
from cnnlab.experiments.ledger import Entry, entries

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
BENCH = json.loads((REPO / "benchmarks" / "latest.json").read_text())
LEDGER = entries(REPO / "experiments")
VERDICTS = ("holds", "not shown", "contradicted")


def text(path: Path) -> str:
    return path.read_text()


def flat(path: Path) -> str:
    """The page with its line breaks and runs of spaces as single spaces (prose wraps anywhere)."""
    return " ".join(path.read_text().split())


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text(path), flags=re.M)}


def links(path: Path) -> list[str]:
    """The targets of the page's Markdown links and images, outside code."""
    prose = re.sub(r"```.*?```", "", text(path), flags=re.S)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    return re.findall(r"\]\(([^)\s]+)\)", prose)


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    relative = [t for t in links(page) if not re.match(r"[a-z]+:", t)]  # not http: and the like
    for target in relative:
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        assert resolved.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(resolved), f"{page.name}: no heading #{anchor} in {resolved.name}"


def test_the_readme_is_a_front_door_that_links_every_page() -> None:
    lines = text(README).splitlines()
    assert len(lines) <= 200
    linked = {(README.parent / t).resolve() for t in links(README)}
    assert set(PAGES) <= linked  # every page is reachable from the front door
    for page in PAGES:  # each page starts by saying what a reader wants from it
        first = text(page).split("\n\n")[1]
        assert first.startswith("Read this page"), page.name


def test_the_demo_figures_are_the_latest_benchmarks() -> None:
    job = BENCH["training_loop"]["main_job"]["current"]
    assert (job["model"], job["epochs"]) == ("cifar_vgg", 30)
    readme, training = flat(README), flat(REPO / "docs" / "training.md")
    figures = [
        f"**{job['best_test_acc']:.2%}** test accuracy after {job['total_s']:.1f} s of training",
        f"{job['best_val_acc']:.2%} on validation at epoch {job['best_epoch']}",
    ]
    assert all(f in readme for f in figures), figures
    previous = BENCH["training_loop"]["main_job"]["previous"]
    for f in (
        f"accuracy is {job['best_val_acc']:.2%} after epoch {job['best_epoch']}",
        f"score **{job['best_test_acc']:.2%}** on the test split; the final ones {job['final_test_acc']:.2%}",
        f"training takes {job['total_s']:.1f} s (98% validation accuracy after {job['seconds_to_98']:.1f} s)",
        f"{previous['best_test_acc']:.2%} (best-on-validation) in {previous['total_s']:.1f} s",
    ):
        assert f in training, f
    assert "about 50 s" in readme and round(job["total_s"], -1) == 50


def test_the_demo_models_counts_are_the_registrys() -> None:
    with torch.device("meta"):
        one, three = (cnnlab.create_model("cifar_vgg", in_chans=c, num_classes=10) for c in (1, 3))
    n1, n3 = (sum(p.numel() for p in m.parameters()) for m in (one, three))
    for page in (README, REPO / "docs" / "training.md"):
        assert f"{n1:,} params with its one-channel stem" in flat(page) and f"{n3:,} with" in flat(page)
    assert f"`cifar_vgg` {n3:,} with 3 input channels, {n1:,} with 1" in flat(REPO / "docs" / "models.md")
    peers = sum(1 for e in cnnlab.model_entries().values() if e.peers)
    assert f"{len(cnnlab.list_models())} whole networks ({peers} of them weight-compatible" in flat(README)


def ledger_row(e: Entry) -> str:
    return f"| **{e.name}**: {e.claim} ({e.source}) | {e.paper_figures} | {e.measured} | **{e.verdict}** |"


def test_the_ledger_page_is_cnnlab_claims() -> None:
    page = text(REPO / "docs" / "experiments.md")
    assert all(ledger_row(e) in page for e in LEDGER)
    assert len(re.findall(r"^\| \*\*\w+\*\*: ", page, flags=re.M)) == len(LEDGER)


def test_the_readmes_ledger_headline_counts_the_verdicts() -> None:
    readme = text(README)
    counts = Counter(e.verdict for e in LEDGER)
    assert set(counts) <= set(VERDICTS)
    assert len(LEDGER) == 16 and "Sixteen claims" in readme
    headline = (
        f"**{counts['holds']} hold, {counts['not shown']} are not shown, {counts['contradicted']} are contradicted**"
    )
    assert headline in flat(README)
    rows = dict(re.findall(r"^\| (\w+) \| [^|]+ \| ([a-z ]+) \|$", readme, flags=re.M))
    assert {k: v for k, v in rows.items() if k != "claim"} == {e.name: e.verdict for e in LEDGER}
    for e in LEDGER:  # the short source is the ledger's first author and year
        short = re.search(rf"^\| {e.name} \| ([^|]+) \|", readme, flags=re.M).group(1)  # type: ignore[union-attr]
        assert short.split(",")[0].split(" et al.")[0].split(";")[0] in e.source, (e.name, short)


def experiment_sections() -> list[tuple[str, str]]:
    page = text(REPO / "docs" / "experiments.md")
    sections = re.split(r"^### ", page.split("## What each experiment showed")[1], flags=re.M)[1:]
    found = []
    for sec in sections:
        name = re.search(r"`experiments/results/(\w+)/`", sec)
        assert name, sec[:80]
        found.append((name.group(1), sec.split("\n## ")[0]))
    return found


def decimals(figure: str) -> int:
    return len(figure.split(".")[1]) if "." in figure else 0


def same(value: float, figure: str) -> bool:
    """``value`` as the page writes it: ``figure``'s decimals (or, in scientific notation, its digits)."""
    if "e" in figure:
        mantissa = figure.split("e")[0]
        return float(f"{value:.{decimals(mantissa)}e}") == float(figure)
    return round(value, decimals(figure)) == float(figure)


def summaries(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for metrics in results["summary"].values() for s in metrics.values() if isinstance(s, dict)]


def test_each_experiments_spreads_p_values_and_wall_time_are_its_results() -> None:
    sections = experiment_sections()
    assert sorted(n for n, _ in sections) == sorted(e.name for e in LEDGER)
    checked = Counter()
    for name, sec in sections:
        results = json.loads((REPO / "experiments" / "results" / name / "results.json").read_text())
        wall = re.search(rf"`experiments/results/{name}/`, ([\d.]+) min;", sec)
        if wall:
            assert same(results["meta"]["wall_s"] / 60, wall.group(1)), (name, wall.group(1))
            checked["wall"] += 1
        for mean, std in re.findall(r"(\d+(?:\.\d+)?) ± (\d+(?:\.\d+)?)", sec):  # a mean ± the seeds' spread
            assert any(
                same(s["mean"] * scale, mean) and same(s["std"] * scale, std)
                for s in summaries(results)
                for scale in (100, 1)  # percent, or a count (steps)
            ), (name, mean, std)
            checked["mean ± std"] += 1
        for p in re.findall(r"p = (\d+(?:\.\d+)?(?:e-?\d+)?)", sec):
            ps = [c[k] for c in results["comparisons"] for k in ("p_expected", "p_other")]
            assert any(same(v, p) for v in ps), (name, p)
            checked["p"] += 1
    assert checked["wall"] >= 10 and checked["mean ± std"] >= 25 and checked["p"] >= 15, checked  # all were read


def test_the_speed_figures_are_the_latest_benchmarks() -> None:
    speed, readme = flat(REPO / "docs" / "speed.md"), flat(README)
    block = re.search(r"```text\n(.*?)```", text(REPO / "docs" / "speed.md"), flags=re.S)
    assert block, "speed.md quotes the benchmark's output"
    lines = (REPO / "benchmarks" / "latest.txt").read_text().splitlines()
    quoted = [line for line in block.group(1).splitlines() if line.strip()]
    at = 0
    for line in quoted:  # the quoted lines stand in latest.txt, in its order
        assert line in lines[at:], line
        at = lines.index(line, at) + 1
    ratios = [m[k]["ratio"] for m in BENCH["models"] for k in ("latency_b1", "throughput", "train_step")]
    parity = f"{sum(r >= 0.97 for r in ratios)} of {len(ratios)}"
    ort = BENCH["optimized"]["paths"]["onnxruntime_peer"]
    peak = BENCH["peak_matmul_gflops"]
    loop, analysis = BENCH["training_loop"], BENCH["analysis"]
    figures = [
        f"{parity} medians",
        f"{1 / ort['batch_s']:.1f} img/s at batch {BENCH['optimized']['batch']}",
        f"{ort['gflops'] / peak:.0%} of the machine's {peak:.1f} GFLOP/s",
        f"at {loop['trainer_ratio']:.2f}x a minimal hand-written loop",
        f"takes {analysis['analyze_s']:.2f} s for ResNet-152",
    ]
    assert all(f in readme for f in figures), [f for f in figures if f not in readme]
    for f in (
        f"{parity.replace(' of ', ' of the ')} medians are at or above 0.97",
        f"{1 / ort['batch_s']:.1f} img/s on torchvision's plain export",
        f"numpy's OpenBLAS at {peak:.1f} GFLOP/s",
        f"runs at {ort['gflops']:.1f} GFLOP/s, {ort['gflops'] / peak:.0%} of that",
        f"runs at {loop['trainer_ratio']:.2f}x the hand-written loop",
        f"takes {analysis['analyze_s']:.2f} s ({analysis['analyze_first_s']:.2f} s as the first call",
        f"registry {analysis['models_cli_s']:.1f} s with its count cache",
        f"a wall-time ratio of {loop['main_job']['wall_ratio']:.3f}",
    ):
        assert f in speed, f


def test_the_layering_is_stated_once() -> None:
    """The import order lives in the package docstring (checked by tests/test_layering.py); the pages link to it."""
    order = "errors <- data, layers, machine, plotting <- registry"
    assert order in (cnnlab.__doc__ or "")
    everything = [README, *PAGES]
    assert not any("registry ← weights" in text(p) or "registry <- weights" in text(p) for p in everything)
    assert "../src/cnnlab/__init__.py" in links(REPO / "docs" / "layout.md")
