"""Whether a run resumes, from which checkpoint, and with which recipe: decided here, and only here.

``TrainConfig.resume`` names a run folder (or a checkpoint in one) to continue; ``"auto"`` continues
``out_dir/run_name`` when it holds ``last.pt`` and starts it otherwise, so that the same command line, run again
after any interruption, finishes the run. :func:`open_run` makes that decision, reads the checkpoint (once), and
gives the run its config: the recorded recipe, which a resumed run keeps (only the fields in
:data:`~cnnlab.train.config.RESUME_FREE` may change). :func:`restore` then puts the checkpoint's weights, optimizer,
schedule and RNG states back and returns where the run stands (:class:`Progress`): the epoch and step it goes on
from, each rank's totals of an interrupted epoch, the history, and the best epoch with its weights from ``best.pt``,
checked to be this run's own (a best.pt copied from elsewhere would be tested, and reported, as the run's best).
Weights that are not finite on arrival are refused: a run stops before its weights take a NaN, so the checkpoint,
not the recipe, is at fault.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cnnlab.errors import ConfigError, TrainingError
from cnnlab.train.checkpoint import BEST, LAST, load_checkpoint, load_model_state, misfit, set_rng_state
from cnnlab.train.config import FIELDS, RESUME_FREE, TrainConfig, recorded_config
from cnnlab.train.engine import EpochTotals
from cnnlab.train.runfolder import AUTO, planned_folder, run_files
from cnnlab.train.runlog import EpochMetrics


@dataclass
class Progress:
    """Where a run stands: what a checkpoint holds besides the weights, the optimizer and the RNG states."""

    epoch: int = 1  # the epoch to train next
    partial: EpochTotals = field(default_factory=EpochTotals)  # this rank's totals of that epoch so far (its steps)
    history: list[EpochMetrics] = field(default_factory=list)  # one entry per finished epoch
    best: EpochMetrics | None = None  # the best epoch on validation so far (None: none validated yet)
    best_state: dict[str, Tensor] | None = None  # its weights (best.pt's), for the final test
    grad_norms: dict[str, dict[str, float]] | None = None  # GradNormRecorder's, when it records


def open_run(config: TrainConfig, given: Collection[str] | None = None) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The run's config and, when it resumes, its checkpoint (read here, once; None for a new run).

    ``given``: the fields the caller chose (``cnnlab train --resume RUN``'s flags and YAML keys); the others are
    RUN's recorded ones. None: ``config`` is the whole recipe, as ``resume="auto"`` always takes it. Either way a
    field that would change what the run computes is refused (:func:`check_resume`)."""
    if config.resume == AUTO:
        config, given = resolve_auto(config), None
    if not config.resume:
        return config, None
    state = load_checkpoint(config.resume)
    recorded = recorded_config({**state["config"], "overwrite": False})  # how it took its folder is no recipe
    if given is not None:
        config = dataclasses.replace(recorded, **{name: getattr(config, name) for name in {*given, "resume"}})
    if config.precision == "auto":  # what the run resolved "auto" to when it started, not what this device would
        config = dataclasses.replace(config, precision=recorded.precision)
    check_resume(recorded, config, run=str(planned_folder(config)), epochs_done=state["epoch"] - 1)
    return config, state


def resolve_auto(config: TrainConfig) -> TrainConfig:
    """``resume="auto"`` made concrete: the run folder ``out_dir/run_name`` when it holds a last checkpoint (the
    run continues exactly), else a fresh start over what a run killed before its first checkpoint left."""
    if not config.run_name:
        raise ConfigError("--resume auto needs --run-name: it continues the run of that name when there is one")
    folder = Path(config.out_dir) / config.run_name
    if (folder / LAST).is_file():
        return config.replace(resume=str(folder))
    return config.replace(resume=None, overwrite=folder.is_dir() and bool(run_files(folder)))


def check_resume(recorded: TrainConfig, given: TrainConfig, *, run: str, epochs_done: int) -> None:
    """A ConfigError naming every field of ``given`` that differs from ``recorded`` (the config in the
    checkpoint of ``run``, which has finished ``epochs_done`` epochs) where :data:`RESUME_FREE` does not allow it."""
    old, new = recorded.to_dict(), given.to_dict()
    if new["pretrained"] != old["pretrained"]:
        raise ConfigError(
            f"pretrained with resume: a resumed run continues from its own checkpoint in {run}, so it loads no other "
            f"weights ({new['pretrained']!r} given, {old['pretrained']!r} recorded); drop --pretrained, or start a "
            "new run with it"
        )
    changed = [name for name in FIELDS if name not in RESUME_FREE and new[name] != old[name]]
    if "epochs" in changed and given.schedule == "constant" == recorded.schedule:
        changed.remove("epochs")
    if given.epochs < epochs_done:
        raise ConfigError(f"epochs must be >= {epochs_done}: {run} has already run {epochs_done} epochs")
    if changed:
        what = "; ".join(f"{name} was {old[name]!r} in {run} (given: {new[name]!r})" for name in changed)
        why = f" (the {given.schedule} schedule spans all the epochs)" if "epochs" in changed else ""
        raise ConfigError(
            f"a resumed run continues its recorded recipe: {what}{why}. Start a new run with --pretrained "
            f"{Path(run) / BEST} to train on with another {', '.join(changed)}"
        )


def check_world_size(state: dict[str, Any], world_size: int) -> None:
    """A ConfigError when the run was trained by another number of processes than this one has."""
    if state["world_size"] != world_size:
        raise ConfigError(
            f"{Path(state['path']).parent} was trained by {state['world_size']} process(es) and this run has "
            f"{world_size}: each process's batches and the global batch depend on it; resume with torchrun "
            f"--nproc-per-node {state['world_size']} (or without torchrun for 1)"
        )


def restore(
    state: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    *,
    rank: int,
    log: Callable[[str], None],
) -> Progress:
    """Put the checkpoint's weights, optimizer, schedule and RNG states back; where the run goes on from."""
    _check_finite(state)
    load_model_state(model, state)
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    except (ValueError, KeyError) as e:
        raise TrainingError(f"the optimizer state in {state['path']} does not fit (was --freeze changed?): {e}") from e
    set_rng_state(state["rng"])
    best = EpochMetrics(**state["best"]) if state.get("best") else None
    progress = Progress(
        epoch=state["epoch"],
        partial=EpochTotals(*state["partial"][rank]) if state["partial"] else EpochTotals(),
        history=[EpochMetrics(**m) for m in state["history"]],
        best=best,
        best_state=_best_weights(state, model) if best is not None else None,
        grad_norms=state.get("grad_norms"),
    )
    log(f"resumed from {state['path']} at epoch {progress.epoch}, step {progress.partial.steps}")
    return progress


def _best_weights(state: dict[str, Any], model: nn.Module) -> dict[str, Tensor]:
    """The weights of the best epoch that the checkpoint names, from the run's ``best.pt``, once it is shown to
    be this run's: the same model, and a history that agrees with the checkpoint's (``best.pt`` is written before
    ``last.pt``, so it may be one epoch ahead)."""
    run, epoch = Path(state["path"]).parent, state["best"]["epoch"]
    path = run / BEST
    way_out = (
        f"the run names epoch {epoch} its best and its final test needs those weights: put the run's own {BEST} "
        f"back, or start the run again with --overwrite"
    )
    if not path.is_file():
        raise TrainingError(f"{str(run)!r} holds no {BEST}: {way_out}")
    best = load_checkpoint(path)
    why = misfit(model, best)
    theirs, ours = best.get("history") or [], state["history"]
    if why is None and (not theirs or theirs[: len(ours)] != ours[: len(theirs)]):
        why = "holds the history of another run"
    if why is not None:
        raise TrainingError(f"{str(path)!r} is not this run's best checkpoint ({why}): {way_out}")
    return best["model"]


def _check_finite(state: dict[str, Any]) -> None:
    """A TrainingError when the checkpoint's weights hold NaN or Inf: no step can train them, and the recipe did
    not make them so (the trainer stops before the weights take a NaN); it points to best.pt when that is sound."""
    bad = _nonfinite(state["model"])
    if not bad:
        return
    run, best = Path(state["path"]).parent, Path(state["path"]).parent / BEST
    way_out = "start this run again (--overwrite)"
    if _finite_elsewhere(best, state):
        way_out = f"start a new run from its best weights (--pretrained {best}), or {way_out}"
    raise TrainingError(
        f"the weights in {state['path']!r} are not finite: {len(bad)} tensor(s) hold NaN or Inf "
        f"({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}), so {run} cannot go on from them; {way_out}"
    )


def _nonfinite(weights: dict[str, Tensor]) -> list[str]:
    """The names of the floating-point tensors that hold NaN or Inf."""
    return [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def _finite_elsewhere(path: Path, state: dict[str, Any]) -> bool:
    """Whether ``path`` is a readable checkpoint other than ``state``'s, with finite weights."""
    if not path.is_file() or path == Path(state["path"]):
        return False
    try:
        return not _nonfinite(load_checkpoint(path)["model"])
    except TrainingError:
        return False
