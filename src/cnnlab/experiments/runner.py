"""Running an experiment: one ``cnnlab train`` run per (variant, seed), here or anywhere else.

:func:`plan` turns an :class:`~cnnlab.experiments.spec.ExperimentSpec` into runs, each a complete
:class:`~cnnlab.train.TrainConfig` with its own run folder under ``RUNS``: the pretraining runs first (one per
seed, when the file has a ``pretrain`` phase), then every variant for every seed. :func:`commands` prints each
as a ``cnnlab train`` command line, so that any launcher (GNU parallel, a SLURM array, Ray) can run them on many
machines into a shared folder; :func:`run_local` runs them here, ``jobs`` at a time in worker processes with the
machine's threads divided between them. Either way the results come from the run folders alone
(:func:`cnnlab.experiments.collect.collect`), and a run whose folder holds its ``results.json`` is done: an
interrupted experiment started again reruns only the runs that did not finish (each from its last checkpoint).

Training the runs that are not done is one step, :func:`execute` (an ``Executor``: it trains the runs of one
phase and reports each finished run): :func:`run_local` calls it once per phase, so another executor (a Ray
cluster's, :mod:`.cluster`) can be passed in its place. Every executor lets the other runs finish when one fails
for a reason of its own (an error, not a diverged loss, which is a result); :func:`run_local` then raises
:class:`RunsFailed`. While the runs train, a :class:`~cnnlab.experiments.progress.Progress` shows each of them.

Runs that record what happens within epochs (an experiment with a target, or a ``dead`` metric) validate every
``validate_every`` steps (:mod:`cnnlab.train.watch`); by default a tenth of an epoch of the run's own data.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shlex
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cnnlab.errors import ConfigError, DivergedError, TrainingError
from cnnlab.experiments.progress import FAILED, Live, Progress, showing
from cnnlab.experiments.spec import VALIDATIONS_PER_EPOCH, ExperimentSpec, Variant
from cnnlab.train.config import FIELDS, RESUME_FREE, TrainConfig, config_from_dict, load_yaml, recorded_config
from cnnlab.train.distributed import resolve_device
from cnnlab.train.precision import resolve_precision
from cnnlab.train.runfolder import AUTO

if TYPE_CHECKING:
    from cnnlab.train import Callback

Phase = Literal["pretrain", "variant"]
RESULTS = "results.json"  # what a finished run leaves in its folder (cnnlab.train.fit)


@dataclass(frozen=True)
class Run:
    """One training run of an experiment."""

    phase: Phase
    variant: Variant
    seed: int
    config: TrainConfig

    @property
    def label(self) -> str:
        return self.variant.label

    @property
    def folder(self) -> Path:
        return Path(self.config.out_dir) / str(self.config.run_name)

    def done(self) -> bool:
        """Whether the run has finished (its folder holds ``results.json``); a ConfigError when the folder holds a
        run of another recipe (a quick try, an edited file), which would otherwise pass for this one."""
        self.check_recipe()
        return (self.folder / RESULTS).is_file()

    def check_recipe(self) -> None:
        saved = self.folder / "config.yaml"
        if not saved.is_file():
            return
        recorded, planned = _recipe(recorded_config(load_yaml(saved))), _recipe(self.config)
        if recorded != planned:
            diff = ", ".join(
                f"{k} {recorded[k]!r} (the file says {planned[k]!r})" for k in planned if recorded[k] != planned[k]
            )
            raise ConfigError(
                f"the run folder {self.folder} holds a run of another recipe: {diff}. Give the experiment another "
                "--out (or --runs), or delete that folder to train it again"
            )

    def restart(self) -> TrainConfig:
        """The config that finishes this run from wherever an interrupted attempt left it: ``--resume auto``."""
        return self.config.replace(resume=AUTO)


def _recipe(config: TrainConfig) -> dict[str, Any]:
    """What a run computes: every field but where it runs and how it is written (RESUME_FREE, folders)."""
    ignored = {*RESUME_FREE, "out_dir", "run_name", "resume", "overwrite"}
    recipe = {k: v for k, v in config.to_dict().items() if k not in ignored}
    if config.precision == "auto":  # a run records what auto resolved to on its device
        recipe["precision"] = resolve_precision("auto", resolve_device(config.device))
    return recipe


def steps_per_epoch(config: TrainConfig) -> int:
    """Optimizer steps in one epoch of ``config``'s training split (one process)."""
    from cnnlab.train.trainer import load_data

    return -(-len(load_data(config).train) // config.batch_size)


def _config(spec: ExperimentSpec, variant: Variant, seed: int, runs_dir: str | Path) -> TrainConfig:
    config = spec.config(variant, seed, runs_dir)
    if variant is spec.pretrain or not spec.watches():
        return config
    every = spec.validate_every or max(1, round(steps_per_epoch(config) / VALIDATIONS_PER_EPOCH))
    return config.replace(val_every_steps=every)


def plan(spec: ExperimentSpec, runs_dir: str | Path, seeds: Sequence[int] | None = None) -> list[Run]:
    """Every run of ``spec`` (for ``seeds``, default the file's) with its folder under ``runs_dir``: pretraining
    first, then the variants."""
    seeds = spec.seeds if seeds is None else tuple(seeds)
    pre = spec.pretrain
    first = [Run("pretrain", pre, s, _config(spec, pre, s, runs_dir)) for s in seeds] if pre is not None else []
    return first + [Run("variant", v, s, _config(spec, v, s, runs_dir)) for v in spec.variants for s in seeds]


def command(config: TrainConfig) -> str:
    """The ``cnnlab train`` command line of ``config``: every field that differs from the default (read back by
    ``cnnlab train`` as the same config)."""
    default, args = TrainConfig().to_dict(), ["cnnlab", "train"]
    for name, value in config.to_dict().items():
        if value == default[name]:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(FIELDS[name].default, bool):
            args.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif name == "model_kwargs":
            args += [flag, json.dumps(value, separators=(",", ":"))]
        elif isinstance(value, list):  # classes: "5,6,7"
            args += [flag, ",".join(map(str, value))]
        elif value is not None:
            args += [flag, str(value)]
    return shlex.join(args)


def commands(spec: ExperimentSpec, runs_dir: str | Path, seeds: Sequence[int] | None = None) -> list[str]:
    """One ``cnnlab train`` line per run; the pretraining lines (if any) must finish before the others start."""
    runs = plan(spec, runs_dir, seeds)
    lines = [command(r.restart()) for r in runs]  # --resume auto: the same line finishes a run wherever it stopped
    if spec.pretrain:
        n = len(seeds if seeds is not None else spec.seeds)
        return ["# phase 1: pretraining (run these first)", *lines[:n], "# phase 2: the variants", *lines[n:]]
    return lines


def train_here(config: dict[str, Any], threads: int, callbacks: Sequence[Callback] = ()) -> tuple[str, str]:
    """Run one config in this (worker) process: ("ok" | "diverged", message); ``callbacks``: fit's."""
    import torch

    from cnnlab.train.trainer import fit

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        fit(config_from_dict(config), callbacks=callbacks, log=lambda _s: None)
    except DivergedError as e:  # a loss that became NaN: the run is a result (its results.json says so)
        return "diverged", str(e)
    finally:
        torch.set_num_threads(before)
    return "ok", ""


Report = Callable[[Run, str, str], None]
"""An executor's word on a finished run: (run, "ok" | "diverged" | "failed", message)."""

Executor = Callable[[Sequence[Run], Report], None]
"""Trains the given runs (all of one phase, none done), each to its folder, reports each as it finishes (a run
that fails for a reason of its own is reported, and the others go on), and returns when all have finished."""


class RunsFailed(TrainingError):
    """Runs that ended with an error of their own (not retried; the other runs finished)."""


def failure(e: BaseException) -> str:
    """Why a run failed, as its report and :class:`RunsFailed` say it: the error's type and message."""
    return f"{type(e).__name__}: {e}"


class _Outcomes:
    """The report of one phase: logs each finished run (``[i/n] label seed s: status``), shows it, keeps failures."""

    def __init__(self, todo: Sequence[Run], live: Live) -> None:
        self.todo, self.live, self.t0 = todo, live, time.perf_counter()
        self.finished = 0
        self.failed: dict[Path, str] = {}  # run folder -> why

    def __call__(self, run: Run, status: str, message: str) -> None:
        self.finished += 1
        if status == FAILED:
            self.failed[run.folder] = message.splitlines()[0] if message else "failed"
        note = f" ({message.splitlines()[0]})" if message else ""
        self.live.say(f"[{self.finished}/{len(self.todo)}] {run.label} seed {run.seed}: {status}{note} "
                      f"({time.perf_counter() - self.t0:.0f} s so far)")  # fmt: skip
        self.live.report(run, status, message)

    def check(self) -> None:
        """A :class:`RunsFailed` naming each failed run (in the plan's order) and its reason, when some failed."""
        if not self.failed:
            return
        reasons: dict[str, list[str]] = {}  # reason -> the runs that failed for it
        for run in self.todo:
            if run.folder in self.failed:
                reasons.setdefault(self.failed[run.folder], []).append(f"{run.label} seed {run.seed}")
        why = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in reasons.items())
        raise RunsFailed(
            f"{len(self.failed)} of {len(self.todo)} runs failed with an error of their own (not retried): {why}. "
            "The finished runs are kept; fix the cause and run the experiment again to train the others"
        )


def run_local(
    spec: ExperimentSpec,
    runs_dir: str | Path,
    *,
    jobs: int = 2,
    threads: int | None = None,
    log: Callable[[str], None] = print,
    seeds: Sequence[int] | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> list[Run]:
    """Train every run of ``spec`` (for ``seeds``, default the file's) that is not done, pretraining before the
    variants, with ``executor`` (default :func:`execute`: ``jobs`` at a time here, ``threads`` each), shown by
    ``progress`` (None: only the log's lines). Returns the runs it trained; a :class:`RunsFailed` when some
    failed (after the others of their phase finished; a failed pretraining run stops the variants)."""
    runs = plan(spec, runs_dir, seeds)
    train = executor or partial(execute, jobs=jobs, threads=threads)
    trained = []
    with showing(progress, spec.name, runs, log) as live:
        for phase in ("pretrain", "variant"):
            todo = [r for r in runs if r.phase == phase and not r.done()]
            skipped = sum(1 for r in runs if r.phase == phase) - len(todo)
            if skipped:
                live.say(f"{phase}: {skipped} run(s) already done, kept")
            if todo:
                outcomes = _Outcomes(todo, live)
                train(todo, outcomes)
                outcomes.check()
            trained += todo
    return trained


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def default_threads(jobs: int) -> int:
    """Threads per run when ``jobs`` runs share this machine: its cores divided between them."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def execute(todo: Sequence[Run], report: Report, *, jobs: int = 2, threads: int | None = None) -> None:
    """Train ``todo`` here: ``jobs`` worker processes with ``threads`` each (default: the machine's threads
    divided between them; one job: in this process, on its threads); each run resumes from its last checkpoint
    if it has one."""
    if jobs <= 1 or len(todo) <= 1:
        for run in todo:
            try:
                outcome = train_here(
                    run.restart().to_dict(), threads or (default_threads(jobs) if jobs > 1 else torch_threads())
                )
            except Exception as e:  # the run's own error: reported, and the others go on
                outcome = FAILED, failure(e)
            report(run, *outcome)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {pool.submit(train_here, r.restart().to_dict(), threads or default_threads(jobs)): r for r in todo}
        for f in as_completed(futures):
            try:
                outcome = f.result()
            except Exception as e:  # its own error, or its worker process died (BrokenProcessPool)
                outcome = FAILED, failure(e)
            report(futures[f], *outcome)
