"""Statistics behind a verdict: one-sided tests between two variants' per-seed measurements.

A claim says which variant should do better on which metric ("ResNet-56 reaches a lower training error than
plain-56"). For a measured quantity (an error, a number of steps) Welch's t-test (unequal variances; Welch 1947)
over the seeds gives the one-sided p-value in the expected direction and in the other; for an outcome that each
run has or has not (whether it diverged), Fisher's exact test on the 2 x 2 table of counts does. The verdict is

* **holds** when p < ``alpha`` in the expected direction,
* **contradicted** when p < ``alpha`` in the other direction,
* **not shown** otherwise (the seeds' spread is too large for the difference, or there is none).

The effect is the difference of the means in the metric's unit, positive when the claim is right, with its
Welch 90% confidence interval: its lower end is the one-sided 95% bound, so it excludes 0 exactly when the
expected direction holds. Cohen's d divides the effect by the pooled standard deviation. No verdict is written by
hand: :func:`compare` computes it from the numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["holds", "contradicted", "not shown"]
Direction = Literal["lower", "higher"]
Test = Literal["welch", "fisher"]
ALPHA = 0.05  # the significance level of every verdict


@dataclass(frozen=True)
class Comparison:
    """``better`` should have a ``direction`` value of the metric than ``worse``; what the seeds say."""

    better: str
    worse: str
    metric: str
    direction: Direction
    test: Test
    better_mean: float
    worse_mean: float
    better_std: float
    worse_std: float
    n_better: int
    n_worse: int
    effect: float  # the difference of the means, signed so that > 0 means the claim is right
    ci90: tuple[float, float] | None  # Welch 90% interval of the effect (None for Fisher's test)
    cohens_d: float | None  # effect / pooled standard deviation (None when both spreads are 0, or for Fisher)
    p_expected: float  # one-sided p-value of the expected direction
    p_other: float  # one-sided p-value of the other direction
    verdict: Verdict
    margin: float = 0.0  # the non-inferiority margin the test allowed (0: a plain superiority test)

    def sentence(self) -> str:
        """``"resnet-56 < plain-56 in train_error: 0.0048 vs 0.0409 (effect +0.036, ...; p = 0.001): holds"``."""
        sign = "<" if self.direction == "lower" else ">"
        if self.margin:
            sign += f" (within {self.margin:.4g})"
        ci = f", 90% CI [{self.ci90[0]:+.4g}, {self.ci90[1]:+.4g}]" if self.ci90 else ""
        d = f", d = {self.cohens_d:.2f}" if self.cohens_d is not None else ""
        return (
            f"{self.better} {sign} {self.worse} in {self.metric}: {self.better_mean:.4g} vs {self.worse_mean:.4g} "
            f"(effect {self.effect:+.4g}{ci}{d}; {self.test} p = {self.p_expected:.3g}): {self.verdict}"
        )


def _verdict(p_expected: float, p_other: float, alpha: float) -> Verdict:
    return "holds" if p_expected < alpha else "contradicted" if p_other < alpha else "not shown"


def _check(better_values: Sequence[float], worse_values: Sequence[float]) -> None:
    if len(better_values) < 2 or len(worse_values) < 2:
        raise ValueError(
            f"a verdict needs at least two seeds per variant; got {len(better_values)} and {len(worse_values)}"
        )


def compare(
    better: str,
    better_values: Sequence[float],
    worse: str,
    worse_values: Sequence[float],
    *,
    metric: str,
    direction: Direction,
    alpha: float = ALPHA,
    margin: float = 0.0,
) -> Comparison:
    """The one-sided Welch test that ``better``'s values are ``direction`` than ``worse``'s, and the verdict.

    Both groups need at least two values (seeds). When both spreads are zero the difference is exact: a
    non-zero one decides (p = 0 in its direction), a zero one is "not shown". With a ``margin`` the test is one of
    non-inferiority: that ``better`` trails ``worse`` by less than ``margin`` (the effect plus the margin is
    positive); "contradicted" then means it trails by more.
    """
    from scipy import stats

    _check(better_values, worse_values)
    sign = 1.0 if direction == "higher" else -1.0
    nb, nw = len(better_values), len(worse_values)
    mb, mw = statistics.fmean(better_values), statistics.fmean(worse_values)
    sb, sw = statistics.stdev(better_values), statistics.stdev(worse_values)
    vb, vw = sb**2 / nb, sw**2 / nw
    se = math.sqrt(vb + vw)
    effect = sign * (mb - mw)
    shifted = effect + margin
    if se == 0:
        p_expected, p_other = (0.0, 1.0) if shifted > 0 else (1.0, 0.0) if shifted < 0 else (1.0, 1.0)
        ci = (effect, effect)
    else:
        df = (vb + vw) ** 2 / (vb**2 / (nb - 1) + vw**2 / (nw - 1))  # Welch-Satterthwaite
        t = shifted / se
        p_expected, p_other = float(stats.t.sf(t, df)), float(stats.t.cdf(t, df))
        half = float(stats.t.ppf(1 - alpha, df)) * se
        ci = (effect - half, effect + half)
    pooled = math.sqrt(((nb - 1) * sb**2 + (nw - 1) * sw**2) / (nb + nw - 2))
    return Comparison(
        better, worse, metric, direction, "welch", mb, mw, sb, sw, nb, nw, effect, ci,
        effect / pooled if pooled > 0 else None, p_expected, p_other, _verdict(p_expected, p_other, alpha), margin,
    )  # fmt: skip


def compare_counts(
    better: str,
    better_values: Sequence[float],
    worse: str,
    worse_values: Sequence[float],
    *,
    metric: str,
    direction: Direction,
    alpha: float = ALPHA,
) -> Comparison:
    """The one-sided Fisher exact test for 0/1 outcomes (1: the run diverged): ``better`` should have a
    ``direction`` rate than ``worse``. With three seeds each, 0 of 3 against 3 of 3 gives p = 0.05: not below it."""
    from scipy import stats

    _check(better_values, worse_values)
    if any(v not in (0, 1) for v in (*better_values, *worse_values)):
        raise ValueError(
            f"{metric}: Fisher's test counts 0/1 outcomes, got {list(better_values)}, {list(worse_values)}"
        )
    kb, kw, nb, nw = sum(better_values), sum(worse_values), len(better_values), len(worse_values)
    table = [[kb, nb - kb], [kw, nw - kw]]
    fewer, more = (stats.fisher_exact(table, alternative=a)[1] for a in ("less", "greater"))  # better's odds vs worse's
    p_expected, p_other = (fewer, more) if direction == "lower" else (more, fewer)
    sign = 1.0 if direction == "higher" else -1.0
    mb, mw = kb / nb, kw / nw
    return Comparison(
        better, worse, metric, direction, "fisher", mb, mw, statistics.stdev(better_values),
        statistics.stdev(worse_values), nb, nw, sign * (mb - mw), None, None, float(p_expected), float(p_other),
        _verdict(p_expected, p_other, alpha),
    )  # fmt: skip


def overall(verdicts: Sequence[Verdict | None]) -> Verdict:
    """A claim is contradicted when any of its comparisons is, holds when every one does, else is not shown
    (``None``: a comparison that could not be made, too few finished seeds)."""
    if "contradicted" in verdicts:
        return "contradicted"
    return "holds" if verdicts and all(v == "holds" for v in verdicts) else "not shown"
