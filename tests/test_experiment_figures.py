"""No figure typed by hand (issue 28): each committed summary.md is what its results.json renders, the ledger
gives every claim's verdict, seeds and power figures, and the checker that tests/test_docs.py runs over the
README's claims section and docs/experiments.md catches the prose that drifted from the committed results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.experiments.figures import check
from cnnlab.experiments.report import PLOTS, render

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
COMMITTED = sorted(p.parent for p in (EXPERIMENTS / "results").glob("*/results.json"))


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda p: p.name)
def test_each_summary_is_rendered_from_its_results(folder: Path) -> None:
    payload = json.loads((folder / "results.json").read_text())
    plots = [p for p in PLOTS if (folder / p).is_file()]
    assert (folder / "summary.md").read_text() == render(payload, plots)


def test_the_ledger_gives_every_claim_its_verdict_seeds_and_power(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["claims", "--experiments", str(EXPERIMENTS), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(list(EXPERIMENTS.glob("*.yaml")))
    for row in rows:
        if row["verdict"] == "not run":  # a claim written before it runs (its plan first): no results yet
            assert not (EXPERIMENTS / "results" / row["name"] / "results.json").exists() and not row["seeds"]
            continue
        assert row["verdict"] in ("holds", "contradicted", "not shown", "invalid") and len(row["seeds"]) >= 3
        for c in row["comparisons"]:
            assert {"p_expected", "ci90", "mde", "seeds_needed", "verdict"} <= set(c)
        if row["verdict"] in ("not shown", "invalid"):
            assert row["why"]  # what would decide it, or which runs failed
    se = next(r for r in rows if r["name"] == "se")
    assert se["why"] == "se-resnet-20 vs resnet-20 in test_error: MDE 0.649 points, 13 seeds would decide it"


# Sentences of the README's experiments section as it stood on 2026-12-01, before the figures were checked.
DRIFTED = (
    "**Lesions** (`experiments/results/lesion/`; the degradation experiment's own ResNet-56 and plain-56 runs, same "
    "recipe and seeds, so no training; measuring them took 47.7 min of the 2-core machine). Removing one residual "
    "branch of ResNet-56 raises its validation error from 4.4% to 13.3% on average over the 24 blocks that both nets "
    "can lose.\n\n"
    "**Deformable convolutions** (`experiments/results/deformable/`). The offset convs start at zero, but at lr 0.1 "
    "they reached mean offsets of 193, 21, 100, 9, 6 and 3 pixels in the six layers (seed 0) on an 11x11 map."
)


def test_the_checker_finds_the_figures_that_drifted_from_the_results() -> None:
    """The README's experiments section as it was: the lesion paragraph's "24 blocks" (the lesion error averages
    the 25 blocks both nets can lose), the deformable offsets and the lesion probe's 47.7 minutes (in no
    results.json: typed by hand)."""
    problems = {(p.figure, p.experiments) for p in check(DRIFTED, EXPERIMENTS)}
    assert ("24", ("lesion",)) in problems and ("47.7", ("lesion",)) in problems
    assert ("193", ("deformable",)) in problems


def test_a_figure_is_found_only_at_its_precision_and_unit() -> None:
    good = ("**Small kernels** (`experiments/results/small_kernels/`): 3.67 ± 0.25% against 4.57 ± 0.23% test "
            "error (p = 0.0052), 72,666 against 65,274 parameters.")  # fmt: skip
    assert check(good, EXPERIMENTS) == []
    bad = good.replace("3.67", "3.76").replace("p = 0.0052", "p = 0.052").replace("72,666", "72,665")
    assert [p.figure for p in check(bad, EXPERIMENTS)] == ["3.76 ± 0.25", "0.052", "72,665"]
    assert check("4.57 min of `3.76` in plain-56", EXPERIMENTS) == []  # names no experiment: not checked
    assert [p.figure for p in check("Plain-56 took 4.57 min.", EXPERIMENTS, strict=True)] == ["4.57"]


def test_a_mean_and_its_spread_are_one_summarys() -> None:
    """3.67 is the 3x3 pairs' mean test error and 0.23 (0.2309) the single 5x5s' spread: each figure is in the
    results, the pair is not."""
    text = "**small_kernels**: the 3x3 pairs ended at {} test error."
    assert check(text.format("3.67 ± 0.25%"), EXPERIMENTS) == []
    assert [p.figure for p in check(text.format("3.67 ± 0.23%"), EXPERIMENTS)] == ["3.67 ± 0.23"]


def test_p_values_in_scientific_notation_are_read_whole() -> None:
    """p = 5.21e-13 is the batch-norm comparison at 25x the rate; 5.2e-13 rounds it, 5.3e-13 is no p-value of it."""
    text = "**batchnorm**: BN at that rate ended lower (p = {})."
    assert check(text.format("5.21e-13"), EXPERIMENTS) == [] and check(text.format("5.2e-13"), EXPERIMENTS) == []
    assert [p.figure for p in check(text.format("5.3e-13"), EXPERIMENTS)] == ["5.3e-13"]


def test_a_paragraph_is_about_what_its_section_names() -> None:
    """The lesion section's second paragraph does not repeat the folder; its figures are still the lesion
    experiment's (it averages 25 blocks), up to the next heading. A paper's number is no time: bottleneck's "3x3"
    and "Sec. 4" are in its description and source, not among its wall times."""
    lesion = "### Lesions\n\nThe probe (`experiments/results/lesion/`).\n\nIt averages {} blocks in {} min.\n"
    assert check(lesion.format(25, 59.3), EXPERIMENTS) == []  # the runs' own training times
    assert [p.figure for p in check(lesion.format(24, 47.7), EXPERIMENTS)] == ["24", "47.7"]
    other = "\n### Other\n\nIt averages 24 blocks.\n"  # about no experiment: not checked
    assert [p.figure for p in check(lesion.format(24, 59.3) + other, EXPERIMENTS)] == ["24"]
    assert [p.figure for p in check("**bottleneck**: the reduced runs took 3 min", EXPERIMENTS)] == ["3"]


def test_a_claim_not_yet_run_may_cite_its_files_paper_figures_and_nothing_else() -> None:
    """Before any run a claim's row and section can give only what its file states (the paper, its figures)."""
    planned = "**one_layer_residual**: He et al. 2016, Sec. 3.1; 18 blocks per stage, 56 layers"
    assert check(planned, EXPERIMENTS) == []
    invented = "**one_layer_residual**: the one-layer net ends at 4.2% training error"
    assert [p.figure for p in check(invented, EXPERIMENTS)] == ["4.2"]


def test_the_variant_table_shows_each_metric_once_and_the_gap_in_percent() -> None:
    """An expected ``params`` is not a second params column, and the generalization gap (a difference of two errors)
    is in percent like the errors (gap_head expects both)."""
    from cnnlab.experiments.report import variant_table

    payload = json.loads((EXPERIMENTS / "results" / "gap_head" / "results.json").read_text())
    header, _, *rows = variant_table(payload).splitlines()
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert len(cells) == len(set(cells)) and "generalization gap %" in cells
    gap = payload["summary"]["gap"]["generalization_gap"]
    col = cells.index("generalization gap %")
    assert rows[0].strip("|").split("|")[col].strip() == f"{100 * gap['mean']:.2f} ± {100 * gap['std']:.2f}"
