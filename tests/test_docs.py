"""The README and the pages in docs/: every relative link resolves, and the figures they quote are those of the
committed results (``experiments/results/*/results.json``, ``benchmarks/latest.json`` and ``latest.txt``) and of
the registry. Each check computes the figure from its source and looks for it, as the page writes it; the figures
about the experiments go through the one checker, :func:`cnnlab.experiments.figures.check`."""

from __future__ import annotations

import fnmatch
import json
import re
from collections import Counter
from pathlib import Path

import pytest
import torch

import cnnlab
from cnnlab.experiments.figures import check
from cnnlab.experiments.ledger import Entry, entries
from cnnlab.experiments.stats import Comparison, seeds_text

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
BENCH = json.loads((REPO / "benchmarks" / "latest.json").read_text())
LEDGER = entries(REPO / "experiments")
JUDGED = [e for e in LEDGER if e.verdict != "not run"]  # the README counts verdicts; a planned claim has none yet
VERDICTS = ("holds", "not shown", "contradicted", "invalid")  # in the order the README counts them


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
    assert f"about {round(job['total_s'], -1):.0f} s" in readme  # the demo's time, to the nearest 10 s


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
    verdict = f"**{e.verdict}**" + (f" ({e.why})" if e.why else "")
    return f"| **{e.name}**: {e.claim} ({e.source}) | {e.paper_figures} | {e.measured} | {verdict} |"


def test_the_ledger_page_is_cnnlab_claims() -> None:
    page = text(REPO / "docs" / "experiments.md")
    assert all(ledger_row(e) in page for e in LEDGER), [e.name for e in LEDGER if ledger_row(e) not in page]
    assert len(re.findall(r"^\| \*\*\w+\*\*: ", page, flags=re.M)) == len(LEDGER)


def experiment_sections() -> dict[str, tuple[str, str]]:
    """Each claim's section of docs/experiments.md: name -> (its anchor, its text)."""
    page = text(REPO / "docs" / "experiments.md")
    showed = page.split("## What each experiment showed")[1].split("\n## ")[0]
    found = {}
    for sec in re.split(r"^### ", showed, flags=re.M)[1:]:
        name = re.search(r"`experiments/results/(\w+)/`", sec.split("\n\n")[1])  # named in its first paragraph
        assert name, sec[:80]
        found[name.group(1)] = (slug(sec.splitlines()[0]), sec)
    return found


def failed_groups(e: Entry) -> list[str]:
    """``"3 of 3 nobn-lr0.25 runs failed"``: the failed runs each invalid comparison of ``e`` rests on."""
    return [f for c in e.comparisons for f in re.findall(r"\d+ of \d+ \S+ runs failed", c.get("reason") or "")]


def readme_verdict(e: Entry, anchor: str) -> str:
    """The README's verdict cell: a link to the claim's section, the failed runs of an invalid one, and the seeds
    that would decide each open comparison of one not shown."""
    cell = f"[{e.verdict}](docs/experiments.md#{anchor})"
    if e.verdict == "invalid":
        return f"{cell} ({'; '.join(failed_groups(e))})"
    if e.verdict == "not shown":
        seeds = [seeds_text(Comparison.from_json(c)) for c in e.comparisons if c["verdict"] == "not shown"]
        return f"{cell} (seeds to decide: {', '.join(re.sub(r' seeds would .*', '', s) for s in seeds)})"
    return cell


def test_each_claim_has_a_section_that_gives_its_verdict_and_why() -> None:
    sections = experiment_sections()
    assert sorted(sections) == sorted(e.name for e in LEDGER)
    for e in LEDGER:
        sec = sections[e.name][1]
        assert sec.split("\n\n")[1].startswith(f"Verdict **{e.verdict}**"), e.name
        for group in failed_groups(e):  # an invalid one says how many of its runs failed ("3 of 3")
            assert group.split(" runs")[0].rsplit(" ", 1)[0] in sec.split("\n\n")[1], (e.name, group)
    assert len(set(anchor for anchor, _ in sections.values())) == len(sections)


def claims_section() -> str:
    return "## The papers' claims" + text(README).split("## The papers' claims")[1].split("\n## ")[0]


def counted(n: int, verdict: str) -> str:
    """``"5 hold"``, ``"1 is contradicted"``, ``"3 are invalid"``: a count of one verdict as the headline says it."""
    if verdict == "holds":
        return f"{n} {'holds' if n == 1 else 'hold'}"
    return f"{n} {'is' if n == 1 else 'are'} {verdict}"


def test_the_readmes_ledger_headline_counts_the_verdicts() -> None:
    counts = Counter(e.verdict for e in JUDGED)
    assert set(counts) <= set(VERDICTS)
    assert len(JUDGED) == 16 and "Sixteen claims" in claims_section()
    headline = ", ".join(counted(counts[v], v) for v in VERDICTS)
    assert f"**{headline}**" in " ".join(claims_section().split()), headline
    rows = re.findall(r"^\| \*\*(\w+)\*\* \| ([^|]+) \| (.+) \|$", claims_section(), flags=re.M)
    sections = experiment_sections()
    assert {name: verdict for name, _, verdict in rows} == {
        e.name: readme_verdict(e, sections[e.name][0]) for e in JUDGED
    }
    for name, short, _ in rows:  # the short source is the ledger's first author and year
        source = next(e.source for e in LEDGER if e.name == name)
        assert short.split(",")[0].split(" et al.")[0].split(";")[0] in source, (name, short)


@pytest.mark.parametrize("page", ["README.md", "docs/experiments.md"])
def test_every_figure_about_the_experiments_is_in_their_results(page: str) -> None:
    """One checker for both (issue 28 item 6): the README's claims section and the experiments page, each
    paragraph and row checked against the results of the experiments it (or its section) names."""
    markdown = claims_section() if page == "README.md" else text(REPO / page)
    assert [str(p) for p in check(markdown, REPO / "experiments")] == []


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
    gemm = {"torch": "torch.mm", "numpy": "numpy's OpenBLAS", "onnxruntime": "onnxruntime's MatMul"}
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
        f"{gemm[BENCH['peak_matmul_source']]} at {peak:.1f} GFLOP/s",  # the source of the peak
        f"runs at {ort['gflops']:.1f} GFLOP/s, {ort['gflops'] / peak:.0%} of that",
        f"runs at {loop['trainer_ratio']:.2f}x the hand-written loop",
        f"takes {analysis['analyze_s']:.2f} s ({analysis['analyze_first_s']:.2f} s as the first call",
        f"registry {analysis['models_cli_s']:.1f} s with its count cache",
        f"a wall-time ratio of {loop['main_job']['wall_ratio']:.3f}",
    ):
        assert f in speed, f


PRECISION = json.loads((REPO / "benchmarks" / "main-job-precision.json").read_text())


def test_the_precision_figures_are_the_main_jobs_in_each_precision() -> None:
    """The main job in float32 and bfloat16 over three seeds (benchmarks/main-job-precision.json): the mean final
    validation accuracy that made ``auto`` the default, the test accuracy reported beside it, the wall-time ratio."""
    fp32, bf16 = PRECISION["summary"]["fp32"], PRECISION["summary"]["bf16"]
    assert PRECISION["seeds"] == [0, 1, 2] and PRECISION["bf16_within_seed_spread"]
    val = f"{fp32['final_val_acc']['mean']:.2%}"
    assert val == f"{bf16['final_val_acc']['mean']:.2%}"  # the pages say "in both"
    assert [r["final_val_acc"] for r in PRECISION["runs"] if r["precision"] == "fp32"] == [
        r["final_val_acc"] for r in PRECISION["runs"] if r["precision"] == "bf16"
    ]  # "the same value for each seed" (both lists in seed order)
    test = f"{fp32['final_test_acc']['mean']:.2%} in float32 and {bf16['final_test_acc']['mean']:.2%} in bfloat16"
    readme, training, speed = flat(README), flat(REPO / "docs" / "training.md"), flat(REPO / "docs" / "speed.md")
    assert f"mean final validation accuracy is {val} in float32 and in bfloat16" in readme
    assert f"is {val} in both precisions, with the same value for each seed" in training
    assert f"is {test}" in training
    assert f"validation accuracy of {val} in both" in speed
    assert f"{fp32['final_test_acc']['mean']:.2%} in float32 against {bf16['final_test_acc']['mean']:.2%}" in speed
    assert f"took {PRECISION['wall_ratio']:.3f} of float32's wall time" in speed


def minimum_size_rows() -> list[tuple[int, list[str]]]:
    """docs/models.md's table of minimum input sizes: (pixels, the model-name patterns of its row)."""
    page = text(REPO / "docs" / "models.md").split("### Minimum input sizes")[1].split("\n#")[0]
    rows = re.findall(r"^\| (\d+) px[^|]* \| (.+) \|$", page, flags=re.M)
    return [(int(px), re.findall(r"`([^`]+)`", names)) for px, names in rows]


def test_the_minimum_sizes_are_the_registrys() -> None:
    """Every registered model stands in exactly one row of the table, the row of its declared minimum; every
    pattern names a model; and the GoogLeNet paragraph's sizes and receptive fields are the analyzer's."""
    rows = minimum_size_rows()
    names = cnnlab.list_models()
    for _, patterns in rows:
        assert all(fnmatch.filter(names, pat) for pat in patterns), patterns
    with torch.device("meta"):
        for name in names:
            rows_of = [px for px, patterns in rows if any(fnmatch.fnmatch(name, pat) for pat in patterns)]
            assert rows_of == [cnnlab.create_model(name).min_input_size], name
        v3_aux = cnnlab.create_model("inception_v3", aux_logits=True).min_input_size
        googlenets = {
            "googlenet_paper": cnnlab.create_model("googlenet_paper"),
            "with `maxpool4=2`": cnnlab.create_model("googlenet_paper", maxpool4=2),
            "`googlenet`": cnnlab.create_model("googlenet"),
        }
    page = flat(REPO / "docs" / "models.md")
    assert f"`inception_v3` ({v3_aux} with its auxiliary head)" in page
    (paper, pool2, tv) = ((m.min_input_size, cnnlab.analyze(m).receptive_field[0]) for m in googlenets.values())
    assert f"{paper[0]} px and up, and a receptive field of {paper[1]} px" in page
    assert f"it takes {pool2[0]} px and its field is {pool2[1]}" in page
    assert f"takes {tv[0]} px, with a field of {tv[1]}" in page


def test_the_features_example_is_the_models() -> None:
    with torch.device("meta"):
        features = cnnlab.create_model("resnet50", features_only=True, out_indices=(1, -1))
    channels = features.feature_info.channels()
    assert f"`features.feature_info.channels()` is `{channels}`" in flat(REPO / "docs" / "models.md")


def test_the_layering_is_stated_once() -> None:
    """The import order lives in the package docstring (checked by tests/test_layering.py); the pages link to it."""
    order = "errors <- data, layers, machine, plotting <- registry"
    assert order in (cnnlab.__doc__ or "")
    everything = [README, *PAGES]
    assert not any("registry ← weights" in text(p) or "registry <- weights" in text(p) for p in everything)
    assert "../src/cnnlab/__init__.py" in links(REPO / "docs" / "layout.md")
