"""The verdict statistics: one-sided Welch t-tests, checked against scipy's own ttest_ind and by hand."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from cnnlab.experiments.stats import compare, overall

A = [1.10, 1.30, 1.20, 1.25]  # e.g. test error % of the variant that should be lower
B = [1.60, 1.90, 1.75, 2.10]


def test_welch_p_values_equal_scipys_ttest_ind() -> None:
    c = compare("a", A, "b", B, metric="test_error", direction="lower")
    want = sps.ttest_ind(A, B, equal_var=False, alternative="less").pvalue
    assert c.p_expected == pytest.approx(want, rel=1e-9) and c.p_other == pytest.approx(1 - want, rel=1e-9)
    assert c.verdict == "holds" and c.effect == pytest.approx(sum(B) / 4 - sum(A) / 4)
    assert c.ci95[0] < c.effect < c.ci95[1] and c.ci95[0] > 0  # significant: the interval excludes 0
    flipped = compare("b", B, "a", A, metric="test_error", direction="lower")
    assert flipped.verdict == "contradicted" and flipped.p_other == pytest.approx(want, rel=1e-9)
    higher = compare("b", B, "a", A, metric="accuracy", direction="higher")
    assert higher.verdict == "holds" and higher.p_expected == pytest.approx(want, rel=1e-9)


def test_cohens_d_by_hand_and_spread_too_large_is_not_shown() -> None:
    c = compare("a", [1.0, 3.0], "b", [2.0, 4.0], metric="m", direction="lower")
    # means 2 and 3, both sample sd sqrt(2): d = 1 / sqrt(2); t = 1 / 1.414 with 2 df: far from significant
    assert c.cohens_d == pytest.approx(1 / math.sqrt(2)) and c.verdict == "not shown"
    assert c.p_expected == pytest.approx(sps.ttest_ind([1, 3], [2, 4], equal_var=False, alternative="less").pvalue)


def test_zero_spread_decides_by_the_means_alone() -> None:
    assert compare("a", [0.0, 0.0], "b", [1.0, 1.0], metric="m", direction="lower").verdict == "holds"
    assert compare("a", [1.0, 1.0], "b", [1.0, 1.0], metric="m", direction="lower").verdict == "not shown"
    with pytest.raises(ValueError, match="at least two seeds"):
        compare("a", [1.0], "b", [1.0, 2.0], metric="m", direction="lower")


def test_a_claim_holds_when_every_comparison_holds() -> None:
    assert overall(["holds", "holds"]) == "holds"
    assert overall(["holds", "not shown"]) == "not shown"
    assert overall(["holds", "contradicted"]) == "contradicted"
    assert overall([]) == "not shown"
