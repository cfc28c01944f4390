"""Power you can see, time-to-event comparisons and seeds until decided: the statistics behind issue 28's engine,
checked against textbook values (G*Power, Cohen 1988, Schoenfeld 1983), against scipy's own tests, and by
simulation (numbers drawn at random, nothing trained)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats as sps

from cnnlab.experiments.collect import RunRecord, judge
from cnnlab.experiments.experiment import sequential
from cnnlab.experiments.spec import ExperimentSpec, spec_from_dict
from cnnlab.experiments.stats import (
    compare,
    compare_times,
    fisher_power,
    fisher_seeds,
    logrank_mde,
    logrank_terms,
    look_alpha,
    overall,
    welch_mde,
    welch_power,
    welch_seeds,
    with_power,
)


@pytest.mark.parametrize(("d", "power", "n"), [(0.5, 0.80, 51), (0.5, 0.95, 88), (0.8, 0.80, 21), (0.2, 0.80, 310)])
def test_seeds_needed_are_the_textbook_sample_sizes(d: float, power: float, n: int) -> None:
    """One-sided two-sample t-test at 5%, equal spreads: G*Power 3's sample sizes per group (Faul et al. 2007;
    its worked example, d = 0.5 at 95% power, is 88 per group; at 80%, 51 with an actual power of 0.8059)."""
    assert welch_seeds(d, 1.0, 1.0, 0.05, power) == n
    assert welch_power(d, 1.0, 1.0, n, n) >= power > welch_power(d, 1.0, 1.0, n - 1, n - 1)
    if (d, power) == (0.5, 0.80):
        assert welch_power(0.5, 1.0, 1.0, 51, 51) == pytest.approx(0.8059, abs=1e-4)


@pytest.mark.parametrize(("sb", "sw", "n", "low", "high"), [(0.4, 0.6, 8, 0.785, 0.815), (0.3, 0.3, 3, 0.70, 0.78)])
def test_the_minimum_detectable_effect_has_80_percent_power_by_simulation(
    sb: float, sw: float, n: int, low: float, high: float
) -> None:
    """Welch's test at the MDE: the share of simulated experiments that scipy's own Welch test decides. With 8
    seeds it is 0.8 (the noncentral t with the Welch-Satterthwaite degrees of freedom, G*Power's approximation);
    with 3 it is about 0.74, the approximation's known optimism when the degrees of freedom are estimated from
    so few seeds (stated in the docs: an MDE of three seeds is a lower bound)."""
    mde = welch_mde(sb, sw, n, n)
    rng = np.random.default_rng(0)
    sims = 40_000
    better = rng.normal(-mde, sb, size=(sims, n))  # lower is better: better's mean sits mde below
    worse = rng.normal(0.0, sw, size=(sims, n))
    p = sps.ttest_ind(better, worse, axis=1, equal_var=False, alternative="less").pvalue
    assert low < float((p < 0.05).mean()) < high  # 3 binomial standard errors: 0.006


def test_power_figures_of_a_comparison_follow_from_its_own_numbers() -> None:
    a, b = [0.030, 0.034, 0.031], [0.036, 0.040, 0.035]
    c = with_power(compare("se", a, "plain", b, metric="test_error", direction="lower"))
    assert c.mde == pytest.approx(welch_mde(c.better_std, c.worse_std, 3, 3))
    assert c.seeds_needed == welch_seeds(c.effect, c.better_std, c.worse_std)
    # at the seeds it names the test has 80% power for the observed effect, one fewer has not
    n = c.seeds_needed
    assert (
        welch_power(c.effect, c.better_std, c.worse_std, n, n)
        >= 0.8
        > welch_power(c.effect, c.better_std, c.worse_std, n - 1, n - 1)
    )
    margin = with_power(compare("se", a, "plain", b, metric="test_error", direction="lower", margin=0.01))
    assert margin.mde == pytest.approx(c.mde - 0.01)  # the margin gives that much effect for free
    exact = with_power(compare("a", [5.0, 5.0], "b", [7.0, 7.0], metric="params", direction="lower"))
    assert (exact.mde, exact.seeds_needed) == (0.0, 2)


def test_fishers_exact_power_is_the_share_of_outcomes_it_decides() -> None:
    """By enumeration against simulation with scipy's fisher_exact; and the known cases: 0 of 3 against 3 of 3
    gives p = 0.05 (not below it), 0 of 4 against 4 of 4 gives 1/70."""
    assert fisher_power(0.0, 1.0, 3, 3, fewer=True) == 0.0 and fisher_power(0.0, 1.0, 4, 4, fewer=True) == 1.0
    assert fisher_seeds(0.0, 1.0) == 4
    rng = random.Random(1)
    pb, pw, n, sims = 0.2, 0.8, 6, 4000
    decided = 0
    for _ in range(sims):
        kb, kw = sum(rng.random() < pb for _ in range(n)), sum(rng.random() < pw for _ in range(n))
        decided += sps.fisher_exact([[kb, n - kb], [kw, n - kw]], alternative="less")[1] < 0.05
    exact = fisher_power(pb, pw, n, n, fewer=True)
    assert decided / sims == pytest.approx(exact, abs=3 * math.sqrt(exact * (1 - exact) / sims))


def _censored(times: list[float], reached: list[bool]) -> sps.CensoredData:
    pairs = list(zip(times, reached, strict=True))
    return sps.CensoredData(uncensored=[t for t, e in pairs if e], right=[t for t, e in pairs if not e])


def _tied_times(rng: random.Random, n: int, scale: float) -> tuple[list[float], list[bool]]:
    """Steps to a target measured every 6 steps (ties), some runs censored at step 120."""
    times = [min(120.0, 6.0 * math.ceil(rng.expovariate(1 / scale) / 6)) for _ in range(n)]
    return times, [t < 120 for t in times]


@pytest.mark.parametrize("seed", range(4))
def test_the_log_rank_statistic_is_scipys_and_its_p_value_the_exact_permutation_one(seed: int) -> None:
    """O - E and V with ties give scipy's log-rank statistic; the p-value is the share of the ways to split the
    runs into the two groups whose statistic is at least the observed one, counted here by brute force."""
    import itertools

    rng = random.Random(seed)
    (tb, eb), (tw, ew) = _tied_times(rng, 5, 40.0), _tied_times(rng, 5, 70.0)
    o_minus_e, v = logrank_terms(tb, eb, tw, ew)
    assert o_minus_e / math.sqrt(v) == pytest.approx(sps.logrank(_censored(tb, eb), _censored(tw, ew)).statistic)
    times, reached = tb + tw, eb + ew
    splits = []
    for first in itertools.combinations(range(10), 5):
        rest = [i for i in range(10) if i not in first]
        pick = (
            [times[i] for i in first],
            [reached[i] for i in first],
            [times[i] for i in rest],
            [reached[i] for i in rest],
        )
        splits.append(logrank_terms(*pick)[0])
    c = compare_times("bn", tb, eb, "plain", tw, ew, metric="steps_to_target")
    assert c.test == "logrank" and c.effect == pytest.approx(o_minus_e / v)
    assert c.p_expected == pytest.approx(sum(u >= o_minus_e - 1e-9 for u in splits) / len(splits))
    assert c.p_other == pytest.approx(sum(u <= o_minus_e + 1e-9 for u in splits) / len(splits))


def test_three_runs_against_three_cannot_decide_by_luck() -> None:
    """Three runs that all reach the target before three others: under the null 1 split in 20 does that, so
    p = 0.05, not below it. scipy's asymptotic p-value (0.012) would call it; in simulated experiments with no
    effect that made 6.5% false verdicts at the first look where 2.5% were allowed."""
    fast, slow, done = [60.0, 66.0, 72.0], [120.0, 126.0, 132.0], [True] * 3
    c = compare_times("bn", fast, done, "plain", slow, done, metric="steps_to_target")
    assert c.p_expected == pytest.approx(1 / 20) and c.verdict == "not shown"
    assert sps.logrank(fast, slow, alternative="greater").pvalue < 0.0125  # decided even at a 4-look level
    four = compare_times("bn", [*fast, 78.0], [True] * 4, "plain", [*slow, 138.0], [True] * 4, metric="s")
    assert four.p_expected == pytest.approx(1 / 70) and four.verdict == "holds"


def test_a_run_that_never_reaches_the_target_is_censored_not_given_a_number() -> None:
    """Whatever step a never-reaching run is censored at, the log-rank test says the same: it only knows the run
    was still short of the target then (the old engine's invented 'one epoch past the end' moved the t-test)."""
    better = ([60.0, 66.0, 72.0], [True, True, True])
    late = compare_times("bn", *better, "plain", [120.0, 456.0, 456.0], [True, False, False], metric="s")
    later = compare_times("bn", *better, "plain", [120.0, 9999.0, 9999.0], [True, False, False], metric="s")
    assert late.p_expected == later.p_expected and late.events == (3, 1)
    assert late.worse_mean is None  # fewer than half reached it: no median
    assert late.better_mean == 66.0  # the Kaplan-Meier median of 60, 66, 72
    none = compare_times("a", [10.0, 10.0], [False, False], "b", [10.0, 10.0], [False, False], metric="s")
    assert none.verdict == "not shown" and none.ci90 is None and with_power(none).mde is None


def test_a_step_margin_moves_the_better_runs_earlier() -> None:
    """ "no-aux is not slower than aux by more than 57 steps": moving no-aux's times 57 earlier and testing is the
    non-inferiority test; the same runs 57 steps apart are level without it and within the margin with it."""
    aux = [171.0, 228.0, 285.0, 171.0, 228.0, 285.0]
    plain = [t + 57 for t in aux]
    done = [True] * 6
    level = compare_times("no-aux", plain, done, "aux", aux, done, metric="steps_to_target")
    within = compare_times("no-aux", plain, done, "aux", aux, done, metric="steps_to_target", margin=57.0)
    shifted = compare_times("no-aux", [t - 57 for t in plain], done, "aux", aux, done, metric="steps_to_target")
    assert level.p_expected > 0.5 and within.p_expected == pytest.approx(shifted.p_expected)


def test_the_log_rank_mde_is_schoenfelds() -> None:
    """Schoenfeld (1983): a hazard ratio of 0.5 at two-sided 5% and 80% power needs 4 (1.96 + 0.84)^2 / ln(2)^2
    = 65.3 events with equal allocation (information V = events / 4); and by simulation with exponential times,
    scipy's log-rank test detects the MDE of 40 runs per group in 80% of experiments."""
    events = 4 * (sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) ** 2 / math.log(2) ** 2
    assert events == pytest.approx(65.35, abs=0.01)
    assert math.exp(logrank_mde(events / 4, alpha=0.025)) == pytest.approx(2.0, rel=1e-6)
    n, sims = 40, 600
    mde = logrank_mde(2 * n / 4)  # no censoring: every run is an event
    rng = np.random.default_rng(3)
    decided = 0
    for _ in range(sims):
        fast, slow = rng.exponential(1 / math.exp(mde), n), rng.exponential(1.0, n)
        decided += sps.logrank(fast, slow, alternative="greater").pvalue < 0.05
    assert decided / sims == pytest.approx(0.8, abs=3 * math.sqrt(0.16 / sims) + 0.02)


def test_look_alpha_divides_the_level_among_the_looks() -> None:
    assert look_alpha(4) == 0.0125 and look_alpha(1) == 0.05
    spec = spec_from_dict({"model": "cifar_resnet20", "grid": {"shortcut": ["A", "B"]}, "seeds": [0, 1, 2],
                           "until_decided": {"seeds_per_round": 3, "max_seeds": 12}})  # fmt: skip
    assert spec.plan.rounds(spec.seeds) == [(0, 1, 2), (0, 1, 2, 3, 4, 5), tuple(range(9)), tuple(range(12))]
    assert spec.plan.rounds(spec.seeds, 7) == [(0, 1, 2), (0, 1, 2, 3, 4, 5), (0, 1, 2, 3, 4, 5, 6)]
    assert spec.alpha() == 0.05 / 4  # whatever a run caps it at: the level is the plan's


def test_invalid_is_reported_unless_something_is_contradicted() -> None:
    assert overall(["holds", "invalid"]) == "invalid"
    assert overall(["invalid", "contradicted"]) == "contradicted"
    assert overall(["not shown", "invalid"]) == "invalid"


SEQ = {"variants": [{"label": "a", "model": "cifar_resnet20"}, {"label": "b", "model": "cifar_resnet20"}],
       "seeds": [0, 1, 2], "until_decided": {"seeds_per_round": 3, "max_seeds": 12}}  # fmt: skip


def _record(label: str, seed: int, x: float, steps: bool) -> RunRecord:
    """A run that measured ``x`` (a standard normal draw): a test error of 5% + x points, or a first step at
    the target of about 60 exp(x / 2), validated every 6 steps and censored at 120."""
    if not steps:
        return RunRecord(label, seed, "", "ok", {"test_error": 0.05 + 0.01 * x})
    step = 6 * max(1, math.ceil(60 * math.exp(0.5 * x) / 6))
    curve = [[t, 0.5 if t < step else 0.95, 0.0] for t in range(6, min(step, 120) + 1, 6)]
    return RunRecord(label, seed, "", "ok", {}, curve=curve)


def _experiment(spec: object, draws: dict[tuple[str, int], float], *, steps: bool) -> tuple[str | None, int]:
    """One sequential experiment on given draws, judged by the engine's own judge at each look: the final
    verdict and the rounds it ran."""
    last: list[str | None] = []

    def look(seeds: tuple[int, ...]) -> list[str | None]:
        runs = [_record(label, s, draws[label, s], steps) for label in "ab" for s in seeds]
        comparisons, _ = judge(spec, runs, power=False)
        last[:] = [c.verdict if c else None for c in comparisons]
        return last

    ran, _ = sequential(spec.plan.rounds(spec.seeds), look)
    return last[0], ran


def _simulate(spec: object, effect: float, sims: int, *, steps: bool = False) -> tuple[list[str], list[int]]:
    """``sims`` sequential experiments of ``spec`` on numbers drawn at random, the better variant's
    ``effect`` standard deviations lower (its error smaller, its steps fewer). Returns the verdicts and rounds."""
    rng = np.random.default_rng(12)
    outcomes = []
    for _ in range(sims):
        draws = {
            (label, s): rng.normal(0.0, 1.0) - (effect if label == "a" else 0.0) for label in "ab" for s in range(12)
        }
        outcomes.append(_experiment(spec, draws, steps=steps))
    return [v for v, _ in outcomes], [r for _, r in outcomes]


@pytest.mark.parametrize(("metric", "sims"), [("test_error", 1000), ("steps_to_target", 400)])
def test_stopping_at_the_first_decided_round_keeps_false_verdicts_at_5_percent(
    metric: str, sims: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the null (both variants drawn from one distribution), four looks at 3, 6, 9 and 12 seeds, stopping
    at the first decided one: false "holds" and false "contradicted" each stay at or below 5%, with a one-sided
    99% binomial margin (2.33 standard errors of a 5% rate over ``sims`` experiments). Judged at 5% at every look
    instead, the same procedure is well above that bound: the test can fail."""
    steps = metric == "steps_to_target"
    expect = {"expect": [{"better": "a", "worse": "b", "metric": metric}]} | ({"target": 0.9} if steps else {})
    spec = spec_from_dict(SEQ | expect)
    bound = 0.05 + 2.33 * math.sqrt(0.05 * 0.95 / sims)
    verdicts, rounds = _simulate(spec, 0.0, sims, steps=steps)
    assert verdicts.count("holds") / sims <= bound and verdicts.count("contradicted") / sims <= bound
    assert max(rounds) == 4
    if not steps:  # the same four looks, each at the unadjusted 5%
        monkeypatch.setattr(ExperimentSpec, "alpha", lambda self: 0.05)
        wrong, _ = _simulate(spec, 0.0, sims)
        assert wrong.count("holds") / sims > bound


def test_until_decided_finds_a_real_effect_and_stops_early() -> None:
    """A true effect of 1.5 standard deviations: decided "holds" in at least 85% of simulated experiments
    (the power of the last look at 12 seeds and alpha 0.0125 is about 0.9), most of them before the last round."""
    spec = spec_from_dict(SEQ | {"expect": [{"better": "a", "worse": "b", "metric": "test_error"}]})
    verdicts, rounds = _simulate(spec, 1.5, 300)
    assert verdicts.count("holds") / 300 >= 0.85 and verdicts.count("contradicted") == 0
    assert sum(r < 4 for r in rounds) / 300 > 0.5
