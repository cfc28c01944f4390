"""An experiment from its file to its folder: train what is missing, collect, decide, write.

``EXPERIMENT/runs/`` holds one run folder per (variant, seed); ``EXPERIMENT/`` gets ``results.json``,
``summary.md`` and the plots (see :mod:`.report`). The same results come from run folders trained elsewhere
(:func:`collect_into`, ``cnnlab experiment collect FILE --runs DIR``).

**Until decided.** A file with a plan (``until_decided: {seeds_per_round, max_seeds}``) can be run in rounds
(:func:`run_until_decided`, ``--until-decided``): train the first round's seeds, judge, and add a round of seeds
only while some expectation is still "not shown" (:func:`sequential`), up to the plan's maximum. Every verdict is
decided at the level the plan fixes in advance (:meth:`~cnnlab.experiments.spec.ExperimentSpec.alpha`: ``ALPHA``
over the planned looks), so stopping at the first decided round does not make a false verdict likelier than
``ALPHA``. Finished runs are kept: an experiment started again in a later session looks at its rounds again
(the same runs, the same decisions) and trains only what the round it reaches lacks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError
from cnnlab.experiments import report
from cnnlab.experiments.collect import ExperimentResult, collect
from cnnlab.experiments.progress import Progress
from cnnlab.experiments.runner import Executor, run_local
from cnnlab.experiments.spec import ExperimentSpec
from cnnlab.experiments.stats import Verdict
from cnnlab.machine import machine_summary

DECIDED: tuple[Verdict, ...] = ("holds", "contradicted", "invalid")  # more seeds would not change these


def _previous_wall_s(out_dir: Path, spec: ExperimentSpec) -> float:
    """The training time already recorded in ``out_dir`` for this very experiment (0 for another or none)."""
    saved = out_dir / "results.json"
    if not saved.is_file():
        return 0.0
    old = json.loads(saved.read_text())
    same = old.get("fingerprint") == json.loads(json.dumps(spec.fingerprint()))
    return float(old.get("meta", {}).get("wall_s") or 0.0) if same else 0.0


def collect_into(
    spec: ExperimentSpec,
    runs_dir: Path,
    out_dir: Path,
    *,
    command: str = "",
    trained_s: float | None = None,
    partial: bool = False,
    seeds: Sequence[int] | None = None,
    rounds: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> ExperimentResult:
    """Collect the runs under ``runs_dir`` (for ``seeds``, default the file's) and write ``out_dir``'s results,
    summary and plots.

    ``trained_s``: the wall time this invocation spent training; the experiment's ``wall_s`` adds it to what the
    folder already recorded for the same experiment (an interrupted experiment started again). Collected from
    elsewhere (``None``), the wall time is the sum of the runs' own. ``rounds``: what a sequential experiment ran.
    """
    t0 = time.perf_counter()
    result = collect(spec, runs_dir, partial=partial, seeds=seeds)  # measures every run: training error, probes
    result.rounds = rounds
    collect_s = time.perf_counter() - t0
    if result.missing():
        names = ", ".join(f"{r.label} seed {r.seed}" for r in result.missing())
        log(f"note: {len(result.missing())} run(s) have not finished and are left out: {names}")
    walls = [r.wall_s for r in result.records if r.wall_s is not None]
    meta = {
        "command": command,
        "machine": machine_summary(),
        "wall_s": _previous_wall_s(out_dir, spec) + trained_s if trained_s is not None else sum(walls),
        "runs_wall_s": sum(walls),  # each run's training time, summed (runs in parallel overlap)
        "collect_s": collect_s,  # measuring the trained runs (training error, lesion probes), after the training
        "runs": str(runs_dir),
    }
    path = report.write(result, out_dir, meta=meta)
    verdict = f"; verdict: {result.verdict}" if result.verdict else ""
    log(f"wrote {path} and results.json{verdict}")
    for c in result.comparisons:
        log(f"  {c.sentence()}")
    return result


def run_experiment(
    spec: ExperimentSpec,
    out_dir: Path,
    *,
    jobs: int = 2,
    threads: int | None = None,
    command: str = "",
    log: Callable[[str], None] = print,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> ExperimentResult:
    """Train every run of ``spec`` that has not finished (``out_dir/runs``), then collect into ``out_dir``
    (:func:`~cnnlab.experiments.runner.run_local`'s arguments)."""
    runs_dir = out_dir / "runs"
    n = len(spec.variants) * len(spec.seeds) + (len(spec.seeds) if spec.pretrain else 0)
    where = f", {jobs} at a time" if executor is None else ""  # another executor says where it runs them
    log(f"experiment {spec.name}: {len(spec.variants)} variants x seeds {list(spec.seeds)} ({n} runs){where}")
    if spec.plan is not None:
        log(f"note: the file plans rounds up to {spec.plan.max_seeds} seeds; this runs the first (--until-decided "
            "runs them while undecided); its verdicts are decided at the plan's level either way")  # fmt: skip
    t0 = time.perf_counter()
    trained = run_local(spec, runs_dir, jobs=jobs, threads=threads, log=log, executor=executor, progress=progress)
    elapsed = time.perf_counter() - t0 if trained else 0.0
    return collect_into(spec, runs_dir, out_dir, command=command, trained_s=elapsed, log=log)


def sequential(
    rounds: Sequence[Sequence[int]], look: Callable[[Sequence[int]], Sequence[Verdict | None]]
) -> tuple[int, bool]:
    """Look at each round's seeds in turn (``look``: each expectation's verdict, None where it could not be
    made) and stop at the first where every one is decided. Returns (rounds looked at, whether decided)."""
    for k, seeds in enumerate(rounds, 1):
        if all(v in DECIDED for v in look(seeds)):
            return k, True
    return len(rounds), False


def run_until_decided(
    spec: ExperimentSpec,
    out_dir: Path,
    *,
    max_seeds: int | None = None,
    jobs: int = 2,
    threads: int | None = None,
    command: str = "",
    log: Callable[[str], None] = print,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> ExperimentResult:
    """Train and judge ``spec`` round by round as its plan says (see the module docstring), up to ``max_seeds``
    (at most the plan's own: a lower cap stops sooner, which keeps the level; a higher one would not), then
    write the results of the round it stopped at."""
    plan = spec.plan
    if plan is None:
        raise ConfigError(
            f"{spec.name}: --until-decided follows the plan written in the file before it runs; add "
            "'until_decided: {seeds_per_round: N, max_seeds: M}' to it"
        )
    if max_seeds is not None and not len(spec.seeds) <= max_seeds <= plan.max_seeds:
        raise ConfigError(
            f"--max-seeds must be between the first round's {len(spec.seeds)} seeds and the plan's max_seeds "
            f"({plan.max_seeds}): the level of every verdict was fixed by the plan; edit the file to plan more"
        )
    runs_dir, rounds = out_dir / "runs", plan.rounds(spec.seeds, max_seeds)
    looks = plan.looks(len(spec.seeds))
    log(f"experiment {spec.name} until decided: rounds of seeds {[len(r) for r in rounds]} ({looks} planned), "
        f"each verdict at alpha {spec.alpha():.4g}")  # fmt: skip
    t0, trained = time.perf_counter(), False

    def look(seeds: Sequence[int]) -> list[Verdict | None]:
        nonlocal trained
        ran = run_local(spec, runs_dir, jobs=jobs, threads=threads, log=log, seeds=seeds, executor=executor,
                        progress=progress)  # fmt: skip
        trained = bool(ran) or trained
        result = collect(spec, runs_dir, seeds=seeds, power=False)
        decided = {c.key(): c.verdict for c in result.comparisons}
        verdicts = [decided.get(e.key()) for e in spec.expect]
        log(f"round with {len(seeds)} seeds: {', '.join(str(v) for v in verdicts)}")
        return verdicts

    ran, decided = sequential(rounds, look)
    info = {
        "ran": ran, "planned": looks, "seeds_per_round": plan.seeds_per_round, "max_seeds": plan.max_seeds,
        "alpha": spec.alpha(), "decided": decided,
    }  # fmt: skip
    elapsed = time.perf_counter() - t0 if trained else 0.0
    return collect_into(spec, runs_dir, out_dir, command=command, trained_s=elapsed, seeds=rounds[ran - 1],
                        rounds=info, log=log)  # fmt: skip
