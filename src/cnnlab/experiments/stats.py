"""Statistics behind a verdict: one-sided tests between two variants' per-seed measurements, and their power.

A claim says which variant should do better on which metric ("ResNet-56 reaches a lower training error than
plain-56"). For a measured quantity (an error, an IoU) Welch's t-test (unequal variances; Welch 1947) over the
seeds gives the one-sided p-value in the expected direction and in the other; for an outcome that each run has or
has not (whether it diverged, whether it died) Fisher's exact test on the 2 x 2 table of counts does; for the
number of steps until a run first reached a target accuracy, a time-to-event measurement in which a run that
never reached it is *censored* at its last step (it would have needed more, how many is unknown), the log-rank
test does (Peto & Peto 1972; the statistic of ``scipy.stats.logrank``, its p-value from the exact permutation
distribution: :func:`compare_times`). The verdict is

* **holds** when p < ``alpha`` in the expected direction,
* **contradicted** when p < ``alpha`` in the other direction,
* **not shown** otherwise (the seeds' spread is too large for the difference, or there is none),
* **invalid** when a run the comparison rests on failed (:mod:`cnnlab.experiments.collect` decides that; the
  numbers are still shown, the verdict says why they are no evidence).

The effect is positive when the claim is right: the difference of the means in the metric's unit (Welch,
Fisher: of the rates), or the log of the hazard ratio of reaching the target (log-rank: > 0 when ``better``
reaches it sooner; Peto's estimate (O - E) / V). Its interval is the two-sided 1 - 2 ``alpha`` interval (90% at
the default 5%): its lower end is the one-sided bound, so it excludes 0 exactly when the claim holds (for the
log-rank test the interval is Peto's normal approximation, and the verdict the exact test's).

**Power.** Beside each verdict, :func:`with_power` gives the smallest effect the experiment could have detected
(``mde``: 80% power at the comparison's ``alpha``, one-sided, from the observed spread: the noncentral t of
Welch's statistic, the exact binomial outcomes of Fisher's test, Schoenfeld's normal approximation of the
log-rank statistic with the observed information) and ``seeds_needed``, the seeds per variant at which the test
would have 80% power at the *observed* effect (in whichever direction it lies): a "not shown" then says whether
the effect is absent or the experiment too small.

**Several looks.** An experiment run until decided (:mod:`cnnlab.experiments.experiment`) looks at its seeds
after each round; :func:`look_alpha` divides ``ALPHA`` evenly among the planned looks (Bonferroni over the
rounds), so that the chance of a false verdict in either direction, at whatever round it stops, stays at most
``ALPHA``. No verdict is written by hand: the functions here compute it from the numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Verdict = Literal["holds", "contradicted", "not shown", "invalid"]
Direction = Literal["lower", "higher"]
Test = Literal["welch", "fisher", "logrank"]
ALPHA = 0.05  # the significance level of every verdict (divided among the looks of a sequential experiment)
POWER = 0.8  # the power at which the minimum detectable effect and the seeds needed are stated
MAX_SEEDS = 1000  # seeds_needed above this is reported as None ("more than any experiment here would run")
MAX_FISHER_SEEDS = 100  # the exact power of Fisher's test is summed over every outcome: searched up to this


@dataclass(frozen=True)
class Comparison:
    """``better`` should have a ``direction`` value of the metric than ``worse``; what the seeds say."""

    better: str
    worse: str
    metric: str
    direction: Direction
    test: Test
    better_mean: float | None  # log-rank: the median steps to the target (None: not reached by half the runs)
    worse_mean: float | None
    better_std: float | None  # sample standard deviation over the seeds (None for the log-rank test)
    worse_std: float | None
    n_better: int
    n_worse: int
    effect: float  # signed so that > 0 means the claim is right (see the module docstring for each test's unit)
    ci90: tuple[float, float] | None  # the 1 - 2 alpha interval of the effect (None for Fisher's test)
    cohens_d: float | None  # effect / pooled standard deviation (None when both spreads are 0, or not Welch)
    p_expected: float  # one-sided p-value of the expected direction
    p_other: float  # one-sided p-value of the other direction
    verdict: Verdict
    margin: float = 0.0  # the non-inferiority margin the test allowed (0: a plain superiority test)
    alpha: float = ALPHA  # the level the verdict was decided at
    information: float | None = None  # log-rank: the variance V of O - E (what its power depends on)
    events: tuple[int, int] | None = None  # log-rank: the runs of better and worse that reached the target
    mde: float | None = None  # smallest effect with 80% power at alpha (effect's unit; see with_power)
    seeds_needed: int | None = None  # seeds per variant for 80% power at the observed effect (see with_power)
    reason: str = ""  # why the verdict is invalid

    def key(self) -> tuple[str, str, str]:
        """Which expectation this compares (:meth:`cnnlab.experiments.spec.Expectation.key`)."""
        return self.better, self.worse, self.metric

    @classmethod
    def from_json(cls, d: dict) -> Comparison:
        """A comparison as ``results.json`` holds it (written before the later fields existed, too)."""
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        for k in ("ci90", "events"):
            d[k] = tuple(d[k]) if d.get(k) is not None else None
        return cls(**d)

    def sentence(self) -> str:
        """``"resnet-56 < plain-56 in train_error: 0.0048 vs 0.0409 (effect +0.036, ...; p = 0.001): holds"``."""
        sign = "<" if self.direction == "lower" else ">"
        if self.margin:
            sign += f" (within {self.margin:.4g})"
        ci = f", {interval_label(self.alpha)} CI [{self.ci90[0]:+.4g}, {self.ci90[1]:+.4g}]" if self.ci90 else ""
        d = f", d = {self.cohens_d:.2f}" if self.cohens_d is not None else ""
        power = f"; {power_text(self)}" if self.mde is not None or self.seeds_needed is not None else ""
        why = f" ({self.reason})" if self.reason else ""
        return (
            f"{self.better} {sign} {self.worse} in {self.metric}: {_num(self.better_mean)} vs "
            f"{_num(self.worse_mean)} (effect {self.effect:+.4g}{ci}{d}; {self.test} p = {self.p_expected:.3g}"
            f"{power}): {self.verdict}{why}"
        )


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def interval_label(alpha: float) -> str:
    """``"90%"`` for the interval that goes with a one-sided test at ``alpha``."""
    return f"{100 * (1 - 2 * alpha):.3g}%"


def seeds_text(c: Comparison) -> str:
    """``"9 seeds would decide it"``; without a number, whether none would (no effect seen) or too many."""
    if c.seeds_needed:
        return f"{c.seeds_needed} seeds would decide it"
    if c.effect + (c.margin if c.test != "fisher" else 0.0) == 0:
        return "no number of seeds would decide it (no effect either way)"
    return f"more than {MAX_FISHER_SEEDS if c.test == 'fisher' else MAX_SEEDS} seeds would be needed"


def power_text(c: Comparison) -> str:
    """``"MDE +0.71; 9 seeds would decide it"``: the two power figures in words."""
    mde = "MDE -" if c.mde is None else f"MDE {c.mde:+.3g}"
    if c.test == "logrank" and c.mde is not None:
        mde += f" (hazard ratio {math.exp(c.mde):.3g})"
    return f"{mde}; {seeds_text(c)}"


def look_alpha(looks: int, alpha: float = ALPHA) -> float:
    """The level of each of ``looks`` planned looks at an experiment's seeds (Bonferroni: ``alpha / looks``).

    Why Bonferroni over the rounds rather than Pocock's or O'Brien-Fleming's boundaries: those spend the level
    by the joint distribution of one test statistic across the looks, which differs here from test to test
    (Welch with few degrees of freedom, exact Fisher counts, the log-rank with ties) and from expectation to
    expectation; the union bound needs none of it and holds for any mix of tests and any stopping rule. It
    costs little at the few looks planned here (4 looks: 0.0125 per look against Pocock's 0.0182), and the looks
    are nested (each round keeps the earlier seeds), so the real false-verdict rate is well below ``alpha``.
    """
    if looks < 1:
        raise ValueError(f"a sequential plan needs at least one look, got {looks}")
    return alpha / looks


def _verdict(p_expected: float, p_other: float, alpha: float) -> Verdict:
    return "holds" if p_expected < alpha else "contradicted" if p_other < alpha else "not shown"


def _check(better_values: Sequence[float], worse_values: Sequence[float]) -> None:
    if len(better_values) < 2 or len(worse_values) < 2:
        raise ValueError(
            f"a verdict needs at least two seeds per variant; got {len(better_values)} and {len(worse_values)}"
        )


def _welch_df(vb: float, vw: float, nb: int, nw: int) -> float:
    """Welch-Satterthwaite degrees of freedom of the variances of the two means ``vb`` and ``vw``."""
    return (vb + vw) ** 2 / (vb**2 / (nb - 1) + vw**2 / (nw - 1))


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
        df = _welch_df(vb, vw, nb, nw)
        t = shifted / se
        p_expected, p_other = float(stats.t.sf(t, df)), float(stats.t.cdf(t, df))
        half = float(stats.t.ppf(1 - alpha, df)) * se
        ci = (effect - half, effect + half)
    pooled = math.sqrt(((nb - 1) * sb**2 + (nw - 1) * sw**2) / (nb + nw - 2))
    return Comparison(
        better, worse, metric, direction, "welch", mb, mw, sb, sw, nb, nw, effect, ci,
        effect / pooled if pooled > 0 else None, p_expected, p_other, _verdict(p_expected, p_other, alpha), margin,
        alpha,
    )  # fmt: skip


def _fisher_p(kb: object, kw: object, nb: int, nw: int, fewer: bool) -> object:
    """One-sided p-values of Fisher's exact test for ``kb`` of ``nb`` against ``kw`` of ``nw`` (arrays
    broadcast): that ``better`` has the lower rate (``fewer``) or the higher one. The top-left cell of the
    table is hypergeometric given the margins (scipy's ``fisher_exact`` computes the same)."""
    from scipy import stats

    total = kb + kw  # type: ignore[operator]
    if fewer:
        return stats.hypergeom.cdf(kb, nb + nw, total, nb)
    return stats.hypergeom.sf(kb - 1, nb + nw, total, nb)  # type: ignore[operator]


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
    """The one-sided Fisher exact test for 0/1 outcomes (1: the run diverged, or died): ``better`` should have a
    ``direction`` rate than ``worse``. With three seeds each, 0 of 3 against 3 of 3 gives p = 0.05: not below it."""
    _check(better_values, worse_values)
    if any(v not in (0, 1) for v in (*better_values, *worse_values)):
        raise ValueError(
            f"{metric}: Fisher's test counts 0/1 outcomes, got {list(better_values)}, {list(worse_values)}"
        )
    kb, kw, nb, nw = int(sum(better_values)), int(sum(worse_values)), len(better_values), len(worse_values)
    fewer, more = (float(_fisher_p(kb, kw, nb, nw, f)) for f in (True, False))  # type: ignore[arg-type]
    p_expected, p_other = (fewer, more) if direction == "lower" else (more, fewer)
    sign = 1.0 if direction == "higher" else -1.0
    mb, mw = kb / nb, kw / nw
    return Comparison(
        better, worse, metric, direction, "fisher", mb, mw, statistics.stdev(better_values),
        statistics.stdev(worse_values), nb, nw, sign * (mb - mw), None, None, p_expected, p_other,
        _verdict(p_expected, p_other, alpha), 0.0, alpha,
    )  # fmt: skip


def logrank_scores(times: Sequence[float], reached: Sequence[bool]) -> list[float]:
    """Each run's log-rank score: 1 if it reached the target, minus the sum of d_j / n_j over the event times up
    to its own (d_j runs reached the target at time j, n_j were still short of it just before). The scores of one
    group sum to its observed minus expected events, O - E (Peto & Peto 1972)."""
    runs = list(zip(times, reached, strict=True))
    hazard = {}
    for time in sorted({t for t, e in runs if e}):
        hazard[time] = sum(1 for t, e in runs if e and t == time) / sum(1 for t, _ in runs if t >= time)
    return [float(e) - sum(h for time, h in hazard.items() if time <= t) for t, e in runs]


def logrank_terms(
    better_times: Sequence[float],
    better_reached: Sequence[bool],
    worse_times: Sequence[float],
    worse_reached: Sequence[bool],
) -> tuple[float, float]:
    """(O - E, V) of the log-rank statistic for ``better``: its observed minus expected events summed over the
    distinct event times, and the hypergeometric variance with ties (Mantel 1966; the statistic scipy's
    ``logrank`` divides: Z = (O - E) / sqrt(V)). A run censored at the time of an event is still at risk then."""
    runs = [(t, e, 1) for t, e in zip(better_times, better_reached, strict=True)]
    runs += [(t, e, 0) for t, e in zip(worse_times, worse_reached, strict=True)]
    o_minus_e = v = 0.0
    for time in sorted({t for t, e, _ in runs if e}):
        at_risk = [(e and t == time, g) for t, e, g in runs if t >= time]
        n, n_b = len(at_risk), sum(g for _, g in at_risk)
        d, d_b = sum(1 for ev, _ in at_risk if ev), sum(1 for ev, g in at_risk if ev and g)
        o_minus_e += d_b - d * n_b / n
        if n > 1:
            v += d * (n_b / n) * (1 - n_b / n) * (n - d) / (n - 1)
    return o_minus_e, v


EXACT_PERMUTATIONS = 50_000  # up to this many ways to split the runs, the permutation p-value is exact
RANDOM_PERMUTATIONS = 20_000  # beyond, it is estimated from this many (a fixed random stream: reproducible)


@functools.lru_cache(maxsize=64)
def _splits(n: int, k: int) -> Any:
    """Index arrays (rows) of the ways to give ``k`` of ``n`` runs to the first group: all of them, or
    :data:`RANDOM_PERMUTATIONS` drawn by ``numpy.random.default_rng(0)``."""
    import numpy as np

    if math.comb(n, k) <= EXACT_PERMUTATIONS:
        return np.array(list(itertools.combinations(range(n), k)), dtype=np.int64).reshape(-1, k)
    return np.argsort(np.random.default_rng(0).random((RANDOM_PERMUTATIONS, n)), axis=1)[:, :k]


def permutation_p(scores: Sequence[float], k: int) -> tuple[float, float]:
    """One-sided p-values of the sum of the first ``k`` of ``scores`` against its permutation distribution (every
    way to choose ``k`` of them, or a fixed random sample of ways): (P(sum >= observed), P(sum <= observed)).
    Exact at any sample size, where the normal approximation of a rank statistic is not: with three runs
    against three, scipy's asymptotic log-rank p-value gives a complete separation p = 0.012, an outcome whose
    probability under the null is 1/20 in each direction."""
    import numpy as np

    values = np.asarray(scores, dtype=float)
    sums = values[_splits(len(values), k)].sum(axis=1)
    observed, tol = values[:k].sum(), 1e-9 * max(1.0, float(np.abs(values).sum()))
    exact = math.comb(len(values), k) <= EXACT_PERMUTATIONS
    extra = 0 if exact else 1  # a sampled p-value counts the observed split among the draws
    upper = (int((sums >= observed - tol).sum()) + extra) / (len(sums) + extra)
    lower = (int((sums <= observed + tol).sum()) + extra) / (len(sums) + extra)
    return upper, lower


def _median_time(times: Sequence[float], reached: Sequence[bool]) -> float | None:
    """The Kaplan-Meier median: the first event time at which the estimated fraction not yet there is <= 1/2."""
    survival, runs = 1.0, sorted(zip(times, reached, strict=True))
    for time in sorted({t for t, e in runs if e}):
        n = sum(1 for t, _ in runs if t >= time)
        survival *= 1 - sum(1 for t, e in runs if e and t == time) / n
        if survival <= 0.5:
            return time
    return None


def compare_times(
    better: str,
    better_times: Sequence[float],
    better_reached: Sequence[bool],
    worse: str,
    worse_times: Sequence[float],
    worse_reached: Sequence[bool],
    *,
    metric: str,
    alpha: float = ALPHA,
    margin: float = 0.0,
) -> Comparison:
    """The one-sided log-rank test that ``better`` reaches a target in fewer steps than ``worse``: the
    log-rank statistic (O - E, as ``scipy.stats.logrank`` computes it) against its permutation distribution
    (:func:`permutation_p`: exact for the few seeds of an experiment, where the asymptotic normal p-value gives
    false verdicts; the effect's interval is Peto's normal one, a description beside the exact verdict).

    Each run gives a time (the first step at which its validation accuracy reached the target, or its last step)
    and whether it reached the target (if not, the time is censored). With a ``margin`` (in steps) the claim is
    that ``better`` takes at most ``margin`` steps more: its times, censored ones included, are moved ``margin``
    earlier before the test (a location shift), so that "holds" means it is shown to be within the margin.
    """
    from scipy import stats

    _check(better_times, worse_times)
    shifted = [t - margin for t in better_times]
    o_minus_e, v = logrank_terms(shifted, better_reached, worse_times, worse_reached)
    if v > 0:
        scores = logrank_scores([*shifted, *worse_times], [*better_reached, *worse_reached])
        p_expected, p_other = permutation_p(scores, len(shifted))  # better's events come sooner / later
        effect = o_minus_e / v
        half = float(stats.norm.ppf(1 - alpha)) / math.sqrt(v)
        ci: tuple[float, float] | None = (effect - half, effect + half)
    else:  # no run reached the target, or all at one time in one group: nothing to compare
        p_expected, p_other, effect, ci = 1.0, 1.0, 0.0, None
    return Comparison(
        better, worse, metric, "lower", "logrank", _median_time(better_times, better_reached),
        _median_time(worse_times, worse_reached), None, None, len(better_times), len(worse_times), effect, ci,
        None, p_expected, p_other, _verdict(p_expected, p_other, alpha), margin, alpha, information=v,
        events=(sum(map(bool, better_reached)), sum(map(bool, worse_reached))),
    )  # fmt: skip


def overall(verdicts: Sequence[Verdict | None]) -> Verdict:
    """A claim is contradicted when any of its comparisons is; invalid when, short of that, any rests on a failed
    run; holds when every one does; else is not shown (``None``: a comparison that could not be made, too few
    finished seeds)."""
    if "contradicted" in verdicts:
        return "contradicted"
    if "invalid" in verdicts:
        return "invalid"
    return "holds" if verdicts and all(v == "holds" for v in verdicts) else "not shown"


# ------------------------------------------------------------------------------------------------------ power


def welch_power(effect: float, sb: float, sw: float, nb: int, nw: int, alpha: float = ALPHA) -> float:
    """The probability that the one-sided Welch test at ``alpha`` decides for a true ``effect`` (in the tested
    direction, the margin included) with spreads ``sb``, ``sw`` and ``nb``, ``nw`` seeds: Welch's statistic as a
    noncentral t with the Welch-Satterthwaite degrees of freedom and noncentrality effect / se."""
    from scipy import stats

    vb, vw = sb**2 / nb, sw**2 / nw
    if vb + vw == 0:
        return 1.0 if effect > 0 else 0.0
    df = _welch_df(vb, vw, nb, nw)
    return float(stats.nct.sf(stats.t.ppf(1 - alpha, df), df, effect / math.sqrt(vb + vw)))


def welch_mde(sb: float, sw: float, nb: int, nw: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest effect (the margin included) that the one-sided Welch test at ``alpha`` detects with
    probability ``power``: the noncentrality at which :func:`welch_power` reaches it, times the standard error."""
    from scipy import optimize, stats

    vb, vw = sb**2 / nb, sw**2 / nw
    if vb + vw == 0:
        return 0.0
    df = _welch_df(vb, vw, nb, nw)
    crit = float(stats.t.ppf(1 - alpha, df))
    ncp = optimize.brentq(lambda d: float(stats.nct.sf(crit, df, d)) - power, 0.0, crit + 50.0, xtol=1e-10)
    return ncp * math.sqrt(vb + vw)


def welch_seeds(effect: float, sb: float, sw: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """The fewest seeds per variant (the same for both, at least 2) at which the one-sided Welch test at
    ``alpha`` has ``power`` for ``|effect|``, the spreads staying as observed; None when the effect is 0 or more
    than :data:`MAX_SEEDS` would be needed."""
    size = abs(effect)
    if size == 0:
        return None
    if sb == sw == 0:
        return 2

    def enough(n: int) -> bool:
        return welch_power(size, sb, sw, n, n, alpha) >= power

    if not enough(MAX_SEEDS):
        return None
    lo, hi = 1, MAX_SEEDS  # enough(hi); not enough(lo) (a single seed has no spread to test)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return max(2, hi)


def fisher_power(
    rate_better: float, rate_worse: float, nb: int, nw: int, *, fewer: bool, alpha: float = ALPHA
) -> float:
    """The exact probability that Fisher's one-sided test at ``alpha`` (``better`` has the lower rate when
    ``fewer``) decides, when ``better``'s runs have the outcome with probability ``rate_better`` and
    ``worse``'s with ``rate_worse``: every pair of counts, weighed by its binomial probability."""
    import numpy as np
    from scipy import stats

    kb, kw = np.arange(nb + 1)[:, None], np.arange(nw + 1)[None, :]
    decided = np.asarray(_fisher_p(kb, kw, nb, nw, fewer)) < alpha
    weight = stats.binom.pmf(kb, nb, rate_better) * stats.binom.pmf(kw, nw, rate_worse)
    return float((weight * decided).sum())


def fisher_mde(
    rate_worse: float, nb: int, nw: int, *, fewer: bool, alpha: float = ALPHA, power: float = POWER
) -> float | None:
    """The smallest difference of rates, from ``worse``'s observed rate in the claimed direction, that Fisher's
    test detects with probability ``power`` (searched in steps of 0.01); None when no rate left on that side
    gives it (``worse`` already at 0 when ``better`` should have fewer)."""
    room = rate_worse if fewer else 1 - rate_worse
    for step in range(1, round(room * 100) + 1):
        d = step / 100
        rate = rate_worse - d if fewer else rate_worse + d
        if fisher_power(rate, rate_worse, nb, nw, fewer=fewer, alpha=alpha) >= power:
            return d
    return None


def fisher_seeds(rate_better: float, rate_worse: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """The fewest seeds per variant at which Fisher's test in the direction the rates lie has ``power`` (None
    when they are equal, or beyond :data:`MAX_FISHER_SEEDS`)."""
    if rate_better == rate_worse:
        return None
    fewer = rate_better < rate_worse
    for n in range(2, MAX_FISHER_SEEDS + 1):
        if fisher_power(rate_better, rate_worse, n, n, fewer=fewer, alpha=alpha) >= power:
            return n
    return None


def logrank_mde(information: float, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """The smallest log hazard ratio the one-sided log-rank test at ``alpha`` detects with ``power``, given
    the information V (the variance of O - E): (z_{1-alpha} + z_power) / sqrt(V) (Schoenfeld 1981, 1983, where V
    is about the events times p(1 - p) for allocation p); None without information (no run reached the target)."""
    from scipy import stats

    if information <= 0:
        return None
    return float((stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)) / math.sqrt(information))


def logrank_seeds(
    log_hazard_ratio: float, information: float, n_better: int, n_worse: int, alpha: float = ALPHA,
    power: float = POWER,
) -> int | None:  # fmt: skip
    """Seeds per variant at which the log-rank test has ``power`` for the observed log hazard ratio, the
    information growing in proportion to the runs (as the events do when each run's chance of reaching the
    target stays as observed); None when there is no effect or no information."""
    mde = logrank_mde(information, alpha, power)
    if mde is None or log_hazard_ratio == 0:
        return None
    per_seed = (n_better + n_worse) / 2
    n = math.ceil(per_seed * (mde / abs(log_hazard_ratio)) ** 2 - 1e-9)
    return max(2, n) if n <= MAX_SEEDS else None


def with_power(c: Comparison, power: float = POWER) -> Comparison:
    """``c`` with its minimum detectable effect and the seeds that would decide its observed effect, from the
    comparison's own figures (so results written before these existed get them too)."""
    if c.test == "welch":
        assert c.better_std is not None and c.worse_std is not None
        mde = welch_mde(c.better_std, c.worse_std, c.n_better, c.n_worse, c.alpha, power) - c.margin
        seeds = welch_seeds(c.effect + c.margin, c.better_std, c.worse_std, c.alpha, power)
    elif c.test == "fisher":
        assert c.better_mean is not None and c.worse_mean is not None
        fewer = c.direction == "lower"
        mde = fisher_mde(c.worse_mean, c.n_better, c.n_worse, fewer=fewer, alpha=c.alpha, power=power)
        seeds = fisher_seeds(c.better_mean, c.worse_mean, c.alpha, power)
    else:
        information = c.information or 0.0
        mde = logrank_mde(information, c.alpha, power)
        seeds = logrank_seeds(c.effect, information, c.n_better, c.n_worse, c.alpha, power)
    return dataclasses.replace(c, mde=mde, seeds_needed=seeds)
