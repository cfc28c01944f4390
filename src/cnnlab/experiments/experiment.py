"""An experiment from its file to its folder: train what is missing, collect, decide, write.

``EXPERIMENT/runs/`` holds one run folder per (variant, seed); ``EXPERIMENT/`` gets ``results.json``,
``summary.md`` and the plots (see :mod:`.report`). The same results come from run folders trained elsewhere
(:func:`collect_into`, ``cnnlab experiment collect FILE --runs DIR``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from cnnlab.experiments import report
from cnnlab.experiments.collect import ExperimentResult, collect
from cnnlab.experiments.runner import run_local
from cnnlab.experiments.spec import ExperimentSpec
from cnnlab.machine import machine_summary


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
    log: Callable[[str], None] = print,
) -> ExperimentResult:
    """Collect the runs under ``runs_dir`` and write ``out_dir``'s results, summary and plots.

    ``trained_s``: the wall time this invocation spent training; the experiment's ``wall_s`` adds it to what the
    folder already recorded for the same experiment (an interrupted experiment started again). Collected from
    elsewhere (``None``), the wall time is the sum of the runs' own.
    """
    t0 = time.perf_counter()
    result = collect(spec, runs_dir, partial=partial)  # measures every run: training error, probes
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
    trained = run_local(spec, runs_dir, jobs=jobs, log=log)
    elapsed = time.perf_counter() - t0 if trained else 0.0
    return collect_into(spec, runs_dir, out_dir, command=command, trained_s=elapsed, log=log)
