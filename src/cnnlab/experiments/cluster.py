"""An experiment's runs on a Ray cluster: ``cnnlab experiment run FILE --ray [ADDRESS]``.

:class:`RayExecutor` is an :data:`~cnnlab.experiments.runner.Executor`: each run is a Ray task that asks for the
threads it trains with (``num_cpus``) and, when its recipe's device is CUDA (or ``auto`` on a cluster that has
GPUs), one GPU; Ray runs as many at once as the cluster's resources allow, the pretraining phase before the
variants (:func:`~cnnlab.experiments.runner.run_local` calls the executor once per phase). :func:`ray_cluster`
starts a Ray of this machine's own (no address) or joins one (``auto``, ``ray://HOST:PORT``).

**Where the results go: a shared filesystem.** A task trains in the driver's working directory and writes its
run folder where the driver's plan says, from the node that trains it. The other way, results sent back to the
driver when a task ends, would lose what matters most: a run's folder holds its checkpoint, which lets the run
resume after its worker died (Ray retries the task, perhaps on another node) or after the driver was stopped;
a folder shipped at the end is lost with the worker it was on, and with it the hours it had trained. So every
node must see the driver's results folder and working directory at the same paths. Before submitting a run, the
driver leaves a file of a random name in the results folder; a task that cannot read it fails at once with a
ConfigError that says what the cluster needs (not retried), rather than training into a folder no one collects.

**Stopping.** Ctrl-C in the driver removes those files: each run sees it within ``STOP_CHECK_S`` seconds, stops
at its next step as Ctrl-C stops ``cnnlab train`` (its checkpoint saved), and the driver waits for them a while
before it goes. (Not ``ray.cancel``: cancelling a task whose result is on its way can abort the driver, a
RAY_CHECK "Tried to complete task that was not pending" seen here with Ray 2.60; the race of ray-project/ray#54798.)
A driver killed outright takes its tasks with it (Ray ends the job's workers); started again, it keeps the
finished runs and resumes the others from their last checkpoints.

**Retries.** A task whose worker died (killed, out of memory, its node lost) is retried up to ``max_retries``
times, and the run resumes from its last checkpoint (``--resume auto``). A run that fails for a reason of its
own (a cnnlab error, any exception) is not retried (``retry_exceptions=False``): it is reported as failed and the
other runs go on. A diverged run is a result, as on this machine.

Ray is an optional dependency: ``pip install 'cnnlab[ray]'``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError, MissingDependencyError
from cnnlab.experiments.progress import FAILED
from cnnlab.experiments.runner import Report, Run, failure, train_here
from cnnlab.train import Callback, StepInfo

MAX_RETRIES = 3  # Ray's default for a task: a worker lost three times in one run points at the run, not bad luck
STOP_WAIT_S = 30.0  # after Ctrl-C, how long the driver waits for the runs to save their checkpoints and stop
STOP_CHECK_S = 1.0  # how often a run looks for the driver's file (a stat on the shared filesystem)
OBJECT_STORE_BYTES = 1 << 28  # a Ray of this machine's own: tasks exchange configs and short tuples, not tensors


def import_ray() -> Any:
    """The ``ray`` module, or a cnnlab error that names the package when it is missing."""
    try:
        import ray
    except ImportError as e:
        raise MissingDependencyError(
            "--ray needs Ray, which is not installed: pip install 'cnnlab[ray]' (or pip install ray)"
        ) from e
    return ray


@contextmanager
def ray_cluster(address: str | None, *, log: Callable[[str], None] = print) -> Iterator[None]:
    """Ray for the block: joined at ``address`` (``auto``: the cluster this machine belongs to; ``ray://HOST:PORT``:
    one elsewhere), or, without one, started on this machine for the block and stopped after it. A Ray this
    process was already connected to is used as it is (and left running)."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        try:
            if address is None:
                ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                         object_store_memory=OBJECT_STORE_BYTES)  # fmt: skip
            else:
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
            raise ConfigError(
                f"could not join the Ray cluster at {address!r}: {str(e).splitlines()[0]}. Give the address of a "
                "running cluster (`ray start --head` starts one; `auto` finds the one on this machine), or --ray "
                "without an address to start one here"
            ) from e
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    total = ray.cluster_resources()
    where = "on this machine" if address is None else f"at {address}"
    log(f"Ray {where}: {len(nodes)} node(s), {total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs")
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def gpus_for(device: str, cluster_gpus: float) -> int:
    """The GPUs a run on ``device`` asks for: one on CUDA (``auto``: when the cluster has any), else none."""
    if device.startswith("cuda"):
        if not cluster_gpus:
            raise ConfigError(f"the recipe trains on {device!r} and the Ray cluster has no GPU; use --device cpu")
        return 1
    return 1 if device == "auto" and cluster_gpus else 0


def check_shared(marker: Path, cwd: str) -> None:
    """A ConfigError naming what the cluster needs, when this (worker) node does not see the driver's results
    folder (the ``marker`` it left there) or its working directory ``cwd`` at the driver's paths."""
    if marker.is_file() and Path(cwd).is_dir():
        return
    raise ConfigError(
        f"the Ray worker on {socket.gethostname()} cannot see the results folder {marker.parent} that the driver "
        f"named (or its working directory {cwd}): a run on Ray writes its folder, checkpoints included, from the "
        "node that trains it, so every node must mount the driver's folders at the same paths (a shared "
        "filesystem: NFS, Lustre, ...). Without one, train the runs of `cnnlab experiment run FILE "
        "--print-commands` where their folders are, then `cnnlab experiment collect FILE --runs DIR`"
    )


class _WhileTheDriverWaits(Callback):
    """Stops the run (as Ctrl-C does: at a step's end, its checkpoint saved) once the driver's file is gone."""

    def __init__(self, marker: Path) -> None:
        self.marker, self.checked = marker, time.monotonic()

    def on_step(self, info: StepInfo) -> None:
        if time.monotonic() - self.checked < STOP_CHECK_S:
            return
        self.checked = time.monotonic()
        if not self.marker.is_file():
            info.request_stop()


def _train_on_worker(
    config: dict[str, Any], threads: int, cwd: str, marker: str, callbacks: Sequence[Callback]
) -> tuple[str, str]:
    """A Ray task: one run, in the driver's working directory, once the driver's folder is seen here; stopped
    (its checkpoint saved) when the driver's file goes."""
    check_shared(Path(marker), cwd)
    here = os.getcwd()
    os.chdir(cwd)
    try:
        return train_here(config, threads, (*callbacks, _WhileTheDriverWaits(Path(marker))))
    except KeyboardInterrupt:  # the driver was stopped, and no one waits for this outcome
        return FAILED, "stopped with the driver"
    finally:
        os.chdir(here)


@contextmanager
def _driver_marks(todo: Sequence[Run]) -> Iterator[dict[Path, Path]]:
    """A file of a random name in each results folder of ``todo`` (folder -> file), removed after the block."""
    name, marks = f".cnnlab-driver-{uuid.uuid4().hex}", {}
    try:
        for folder in sorted({Path(r.config.out_dir).resolve() for r in todo}):
            folder.mkdir(parents=True, exist_ok=True)
            marks[folder] = folder / name
            marks[folder].write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
        yield marks
    finally:
        for mark in marks.values():
            mark.unlink(missing_ok=True)


@dataclass(frozen=True)
class RayExecutor:
    """Trains runs as Ray tasks on the cluster this process is connected to (:func:`ray_cluster`)."""

    threads: int = 1  # CPUs each run asks for and trains with (torch threads)
    max_retries: int = MAX_RETRIES  # retries of a run whose worker died (a run's own error is never retried)
    callbacks: Sequence[Callback] = ()  # given to every run's fit (picklable: they travel to the workers)

    def __call__(self, todo: Sequence[Run], report: Report) -> None:
        ray = import_ray()
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        largest = max((r.get("CPU", 0) for r in nodes), default=0)
        if self.threads > largest:
            raise ConfigError(
                f"each run asks for {self.threads} CPUs (--threads) and the largest node of the Ray cluster has "
                f"{largest:g}; give --threads {max(1, int(largest))} or less"
            )
        gpus = ray.cluster_resources().get("GPU", 0)
        task = ray.remote(_train_on_worker)
        with _driver_marks(todo) as marks:
            refs = {}
            for run in todo:
                options = dict(
                    num_cpus=self.threads, num_gpus=gpus_for(run.config.device, gpus), max_retries=self.max_retries,
                    retry_exceptions=False, name=f"{run.label} seed {run.seed}",
                )  # fmt: skip
                marker = str(marks[Path(run.config.out_dir).resolve()])
                ref = task.options(**options).remote(
                    run.restart().to_dict(), self.threads, os.getcwd(), marker, tuple(self.callbacks)
                )
                refs[ref] = run
            self._wait(ray, refs, report, marks.values())

    def _wait(self, ray: Any, refs: dict[Any, Run], report: Report, marks: Iterable[Path]) -> None:
        """Report each run as its task ends; on Ctrl-C, remove the driver's ``marks`` (each run stops and saves
        its checkpoint) and wait a while for them."""
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    report(refs[ref], *self._outcome(ray, ref))
        except KeyboardInterrupt:
            for mark in marks:
                mark.unlink(missing_ok=True)
            ray.wait(pending, num_returns=len(pending), timeout=STOP_WAIT_S)
            raise

    def _outcome(self, ray: Any, ref: Any) -> tuple[str, str]:
        try:
            status, message = ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # the run's own error, which Ray does not retry
            return FAILED, failure(e.cause if e.cause is not None else e)
        except ray.exceptions.RayError as e:  # its worker (or node) died once more than Ray retries
            first = str(e).splitlines()[0] if str(e) else ""
            return FAILED, f"its worker died {self.max_retries + 1} times ({type(e).__name__}: {first})"
        return status, message
