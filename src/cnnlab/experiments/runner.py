"""Running an experiment: one ``cnnlab train`` run per (variant, seed), here or anywhere else.

:func:`plan` turns an :class:`~cnnlab.experiments.spec.ExperimentSpec` into runs, each a complete
:class:`~cnnlab.train.TrainConfig` with its own run folder under ``RUNS``: the pretraining runs first (one per
seed, when the file has a ``pretrain`` phase), then every variant for every seed. :func:`commands` prints each
as a ``cnnlab train`` command line, so that any launcher (GNU parallel, a SLURM array, Ray) can run them on many
machines into a shared folder; :func:`run_local` runs them here, ``jobs`` at a time in worker processes with the
machine's threads divided between them. Either way the results come from the run folders alone
(:func:`cnnlab.experiments.collect.collect`), and a run whose folder holds its ``results.json`` is done: an
interrupted experiment started again reruns only the runs that did not finish (each from its last checkpoint).

Training the runs that are not done is one step, :func:`execute` (``Executor``: the runs of one phase, and a
log): :func:`run_local` calls it once per phase, so another executor (a cluster's) can be passed in its place.

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
from pathlib import Path
from typing import Any, Literal

from cnnlab.errors import ConfigError, DivergedError
from cnnlab.experiments.spec import VALIDATIONS_PER_EPOCH, ExperimentSpec, Variant
from cnnlab.train.config import FIELDS, RESUME_FREE, TrainConfig, config_from_dict, load_yaml, recorded_config
from cnnlab.train.distributed import resolve_device
from cnnlab.train.precision import resolve_precision
from cnnlab.train.runfolder import AUTO

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


def _train(config: dict[str, Any], threads: int) -> tuple[str, str]:
    """Run one config in this (worker) process: ("ok" | "diverged", message)."""
    import torch

    from cnnlab.train.trainer import fit

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        fit(config_from_dict(config), log=lambda _s: None)
    except DivergedError as e:  # a loss that became NaN: the run is a result (its results.json says so)
        return "diverged", str(e)
    finally:
        torch.set_num_threads(before)
    return "ok", ""


Executor = Callable[[Sequence[Run], Callable[[str], None]], None]
"""Trains the given runs (all of one phase, none done), each to its folder, and returns when all have finished."""


def run_local(
    spec: ExperimentSpec,
    runs_dir: str | Path,
    *,
    jobs: int = 2,
    log: Callable[[str], None] = print,
    seeds: Sequence[int] | None = None,
    executor: Executor | None = None,
) -> list[Run]:
    """Train every run of ``spec`` (for ``seeds``, default the file's) that is not done, pretraining before the
    variants, with ``executor`` (default :func:`execute`, ``jobs`` at a time here; ``jobs=1``: in this process).
    Returns the runs it trained."""
    runs = plan(spec, runs_dir, seeds)
    train = executor or (lambda todo, log: execute(todo, log, jobs=jobs))
    trained = []
    for phase in ("pretrain", "variant"):
        todo = [r for r in runs if r.phase == phase and not r.done()]
        skipped = sum(1 for r in runs if r.phase == phase) - len(todo)
        if skipped:
            log(f"{phase}: {skipped} run(s) already done, kept")
        if todo:
            train(todo, log)
        trained += todo
    return trained


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def execute(todo: Sequence[Run], log: Callable[[str], None], *, jobs: int = 2) -> None:
    """Train ``todo`` here: ``jobs`` worker processes with the machine's threads divided between them (one job:
    in this process, on its threads); each run resumes from its last checkpoint if it has one."""
    t0 = time.perf_counter()
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))

    def done(i: int, run: Run, status: str, message: str) -> None:
        note = f" ({message.splitlines()[0]})" if message else ""
        log(f"[{i}/{len(todo)}] {run.label} seed {run.seed}: {status}{note} ({time.perf_counter() - t0:.0f} s so far)")

    if jobs <= 1 or len(todo) <= 1:
        for i, run in enumerate(todo, 1):
            done(i, run, *_train(run.restart().to_dict(), threads if jobs > 1 else torch_threads()))
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {pool.submit(_train, r.restart().to_dict(), threads): r for r in todo}
        for i, f in enumerate(as_completed(futures), 1):
            done(i, futures[f], *f.result())
