"""Statistics behind a verdict: one-sided Welch t-tests between two variants' per-seed measurements.

A claim says which variant should do better on which metric ("ResNet-56 reaches a lower training error than
plain-56"). With the per-seed values of the two variants, Welch's t-test (unequal variances; Welch 1947) gives
the one-sided p-value in the expected direction and in the other; the verdict is

* **holds** when p < ``alpha`` in the expected direction,
* **contradicted** when p < ``alpha`` in the other direction,
* **not shown** otherwise (the seeds' spread is too large for the difference, or there is none).

The effect size is the difference of the means (in the metric's unit, expected direction positive when the claim
is right), with its Welch 95% confidence interval, and Cohen's d on the pooled standard deviation. No verdict is
written by hand: :func:`compare` computes it from the numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["holds", "contradicted", "not shown"]
Direction = Literal["lower", "higher"]
ALPHA = 0.05  # the significance level of every verdict


@dataclass(frozen=True)
class Comparison:
    """``better`` should have a ``direction`` value of the metric than ``worse``; what the seeds say."""

    better: str
    worse: str
    metric: str
    direction: Direction
    better_mean: float
    worse_mean: float
    better_std: float
    worse_std: float
    n_better: int
    n_worse: int
    effect: (
        float  # worse_mean - better_mean for "lower", better_mean - worse_mean for "higher": > 0 if the claim is right
    )
    ci95: tuple[float, float]  # Welch 95% interval of ``effect``
    cohens_d: float  # effect / pooled standard deviation (inf when both spreads are 0 and the means differ)
    p_expected: float  # one-sided p-value of the expected direction
    p_other: float  # one-sided p-value of the other direction
    verdict: Verdict

    def sentence(self) -> str:
        """``"resnet-56 < plain-56 in train_error: 0.48 vs 4.09 (d = 12.3, p = 0.001): holds"``."""
        sign = "<" if self.direction == "lower" else ">"
        return (
            f"{self.better} {sign} {self.worse} in {self.metric}: {self.better_mean:.4g} vs {self.worse_mean:.4g} "
            f"(effect {self.effect:+.4g}, 95% CI [{self.ci95[0]:+.4g}, {self.ci95[1]:+.4g}], d = {self.cohens_d:.2f}, "
            f"p = {self.p_expected:.3g}): {self.verdict}"
        )


def _welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """(mean(a) - mean(b), its standard error, Welch-Satterthwaite degrees of freedom)."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se > 0 else math.inf
    return statistics.fmean(a) - statistics.fmean(b), se, df


def compare(
    better: str,
    better_values: Sequence[float],
    worse: str,
    worse_values: Sequence[float],
    *,
    metric: str,
    direction: Direction,
    alpha: float = ALPHA,
) -> Comparison:
    """The one-sided Welch test that ``better``'s values are ``direction`` than ``worse``'s, and the verdict.

    Both groups need at least two values (seeds). When both spreads are zero the difference is exact: a
    non-zero one decides (p = 0 in its direction), a zero one is "not shown".
    """
    from scipy import stats

    if len(better_values) < 2 or len(worse_values) < 2:
        raise ValueError(
            f"a verdict needs at least two seeds per variant; got {len(better_values)} and {len(worse_values)}"
        )
    sign = 1.0 if direction == "higher" else -1.0
    diff, se, df = _welch(better_values, worse_values)
    effect = sign * diff
    if se == 0:
        p_expected, p_other = (0.0, 1.0) if effect > 0 else (1.0, 0.0) if effect < 0 else (1.0, 1.0)
        half = 0.0
    else:
        t = effect / se
        p_expected, p_other = float(stats.t.sf(t, df)), float(stats.t.cdf(t, df))
        half = float(stats.t.ppf(0.975, df)) * se
    sb, sw = statistics.stdev(better_values), statistics.stdev(worse_values)
    pooled = math.sqrt(((len(better_values) - 1) * sb**2 + (len(worse_values) - 1) * sw**2)
                       / (len(better_values) + len(worse_values) - 2))  # fmt: skip
    d = effect / pooled if pooled > 0 else (math.copysign(math.inf, effect) if effect else 0.0)
    verdict: Verdict = "holds" if p_expected < alpha else "contradicted" if p_other < alpha else "not shown"
    return Comparison(
        better=better,
        worse=worse,
        metric=metric,
        direction=direction,
        better_mean=statistics.fmean(better_values),
        worse_mean=statistics.fmean(worse_values),
        better_std=sb,
        worse_std=sw,
        n_better=len(better_values),
        n_worse=len(worse_values),
        effect=effect,
        ci95=(effect - half, effect + half),
        cohens_d=d,
        p_expected=p_expected,
        p_other=p_other,
        verdict=verdict,
    )


def overall(verdicts: Sequence[Verdict]) -> Verdict:
    """A claim with several expected comparisons holds when all hold, is contradicted when any is, else not shown."""
    if verdicts and all(v == "holds" for v in verdicts):
        return "holds"
    return "contradicted" if "contradicted" in verdicts else "not shown"
