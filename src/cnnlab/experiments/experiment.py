"""An experiment from its file to its folder: train what is missing, collect, decide, write.

``EXPERIMENT/runs/`` holds one run folder per (variant, seed); ``EXPERIMENT/`` gets ``results.json``,
``summary.md`` and the plots (see :mod:`.report`). The same results come from run folders trained elsewhere
(:func:`collect_into`, ``cnnlab experiment collect FILE --runs DIR``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cnnlab.experiments import report
from cnnlab.experiments.collect import ExperimentResult, collect
from cnnlab.experiments.runner import run_local
from cnnlab.experiments.spec import ExperimentSpec
from cnnlab.machine import machine_summary


def collect_into(
    spec: ExperimentSpec,
    runs_dir: Path,
    out_dir: Path,
    *,
    command: str = "",
    wall_s: float | None = None,
    log: Callable[[str], None] = print,
) -> ExperimentResult:
    """Collect the runs under ``runs_dir`` and write ``out_dir``'s results, summary and plots."""
    result = collect(spec, runs_dir)
    if result.missing():
        names = ", ".join(f"{r.label} seed {r.seed}" for r in result.missing())
        log(f"note: {len(result.missing())} run(s) have not finished and are left out: {names}")
    walls = [r.wall_s for r in result.records if r.wall_s is not None]
    meta = {
        "command": command,
        "machine": machine_summary(),
        "wall_s": wall_s if wall_s is not None else sum(walls),
        "runs_wall_s": sum(walls),
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
    command: str = "",
    log: Callable[[str], None] = print,
) -> ExperimentResult:
    """Train every run of ``spec`` that has not finished (``out_dir/runs``), then collect into ``out_dir``."""
    runs_dir = out_dir / "runs"
    n = len(spec.variants) * len(spec.seeds) + (len(spec.seeds) if spec.pretrain else 0)
    log(
        f"experiment {spec.name}: {len(spec.variants)} variants x seeds {list(spec.seeds)} ({n} runs), {jobs} at a time"
    )
    t0 = time.perf_counter()
    run_local(spec, runs_dir, jobs=jobs, log=log)
    return collect_into(spec, runs_dir, out_dir, command=command, wall_s=time.perf_counter() - t0, log=log)
