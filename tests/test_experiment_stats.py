"""The verdict statistics: one-sided Welch t-tests and Fisher's exact test, checked against scipy's own
implementations and by hand."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from cnnlab.experiments.stats import compare, compare_counts, overall

A = [1.10, 1.30, 1.20, 1.25]  # e.g. test error % of the variant that should be lower
B = [1.60, 1.90, 1.75, 2.10]


def test_welch_p_values_and_interval_equal_scipys() -> None:
    c = compare("a", A, "b", B, metric="test_error", direction="lower")
    ref = sps.ttest_ind(A, B, equal_var=False, alternative="less")
    assert c.p_expected == pytest.approx(ref.pvalue, rel=1e-9) and c.p_other == pytest.approx(1 - ref.pvalue, rel=1e-9)
    assert c.verdict == "holds" and c.effect == pytest.approx(sum(B) / 4 - sum(A) / 4)
    # the 90% interval of the effect: scipy's for b - a (two-sided, 0.90)
    lo, hi = sps.ttest_ind(B, A, equal_var=False).confidence_interval(0.90)
    assert c.ci90 == (pytest.approx(lo), pytest.approx(hi)) and c.ci90[0] > 0
    flipped = compare("b", B, "a", A, metric="test_error", direction="lower")
    assert flipped.verdict == "contradicted" and flipped.p_other == pytest.approx(ref.pvalue, rel=1e-9)
    higher = compare("b", B, "a", A, metric="accuracy", direction="higher")
    assert higher.verdict == "holds" and higher.p_expected == pytest.approx(ref.pvalue, rel=1e-9)


@pytest.mark.parametrize("seed", range(20))
def test_the_interval_excludes_zero_exactly_when_the_claim_holds(seed: int) -> None:
    import random

    rng = random.Random(seed)
    a = [rng.gauss(0.10, 0.02) for _ in range(3)]
    b = [rng.gauss(0.12, 0.03) for _ in range(4)]
    c = compare("a", a, "b", b, metric="val_error", direction="lower")
    assert (c.ci90[0] > 0) == (c.verdict == "holds")
    assert (c.ci90[1] < 0) == (c.verdict == "contradicted")


def test_cohens_d_by_hand_and_spread_too_large_is_not_shown() -> None:
    c = compare("a", [1.0, 3.0], "b", [2.0, 4.0], metric="m", direction="lower")
    # means 2 and 3, both sample sd sqrt(2): d = 1 / sqrt(2); t = 1 / 1.414 with 2 df: far from significant
    assert c.cohens_d == pytest.approx(1 / math.sqrt(2)) and c.verdict == "not shown"
    assert c.p_expected == pytest.approx(sps.ttest_ind([1, 3], [2, 4], equal_var=False, alternative="less").pvalue)


def test_zero_spread_decides_by_the_means_alone() -> None:
    exact = compare("a", [0.0, 0.0], "b", [1.0, 1.0], metric="m", direction="lower")
    assert exact.verdict == "holds" and exact.cohens_d is None
    assert compare("a", [1.0, 1.0], "b", [1.0, 1.0], metric="m", direction="lower").verdict == "not shown"
    with pytest.raises(ValueError, match="at least two seeds"):
        compare("a", [1.0], "b", [1.0, 2.0], metric="m", direction="lower")


@pytest.mark.parametrize(("better", "worse", "verdict"), [
    ([0, 0], [1, 1], "not shown"),  # 0 of 2 against 2 of 2: p = 1/6, two seeds cannot show it
    ([0, 0, 0], [1, 1, 1], "not shown"),  # p = 1/20 = 0.05, not below 0.05
    ([0, 0, 0, 0], [1, 1, 1, 1], "holds"),  # p = 1/70
    ([1, 1, 1, 1], [0, 0, 0, 0], "contradicted"),
])  # fmt: skip
def test_divergence_is_judged_by_fishers_exact_test(better: list[int], worse: list[int], verdict: str) -> None:
    c = compare_counts("scaled", better, "unscaled", worse, metric="diverged", direction="lower")
    table = [[sum(better), len(better) - sum(better)], [sum(worse), len(worse) - sum(worse)]]
    assert c.p_expected == pytest.approx(sps.fisher_exact(table, alternative="less")[1])
    assert c.test == "fisher" and c.verdict == verdict
    with pytest.raises(ValueError, match="0/1 outcomes"):
        compare_counts("a", [0, 2], "b", [1, 1], metric="diverged", direction="lower")


def test_a_claim_holds_when_every_comparison_holds() -> None:
    assert overall(["holds", "holds"]) == "holds"
    assert overall(["holds", "not shown"]) == "not shown"
    assert overall(["holds", "contradicted"]) == "contradicted"
    assert overall([None, "contradicted"]) == "contradicted"  # an undecided comparison hides no contradiction
    assert overall(["holds", None]) == "not shown"
    assert overall([]) == "not shown"


def test_a_margin_makes_it_a_non_inferiority_test_equal_to_scipys_shifted_welch() -> None:
    """``better`` may trail by less than the margin: Welch's test of (worse + margin) against better."""
    a = [2.05, 2.15, 2.10]  # e.g. the cheap variant's error, 0.1 worse than b's
    b = [1.95, 2.05, 2.00]
    plain = compare("a", a, "b", b, metric="test_error", direction="lower")
    assert plain.verdict != "holds"  # it is worse, so it is not better
    c = compare("a", a, "b", b, metric="test_error", direction="lower", margin=0.3)
    ref = sps.ttest_ind(a, [x + 0.3 for x in b], equal_var=False, alternative="less")
    assert c.p_expected == pytest.approx(ref.pvalue, rel=1e-9) and c.verdict == "holds" and c.margin == 0.3
    assert c.effect == pytest.approx(plain.effect) and c.ci90 == plain.ci90  # the effect itself is unchanged
    far = compare("a", [x + 1 for x in a], "b", b, metric="test_error", direction="lower", margin=0.3)
    assert far.verdict == "contradicted"  # trails by about 1.1 > 0.3
    higher = compare("a", b, "b", a, metric="test_miou", direction="higher", margin=0.3)
    assert higher.verdict == "holds"
