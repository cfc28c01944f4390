"""Measurements within epochs: the validation accuracy every K optimizer steps, and the zeros entering the head.

Counted once per epoch, the steps until a run reaches a target accuracy cannot tell apart runs that differ by
less than an epoch (57 steps on mnist5k). :class:`Watch` also validates the weights after every K-th update
(``val_every_steps``) and at each epoch's end, so the first step at which a run reached a target is known to K
steps. In the same pass it measures the fraction of the activations entering the model's head that are exactly
zero: what the Inception-v4 paper calls dying, "the last layer before the average pooling started to produce
only zeros" (Szegedy et al. 2017, Sec. 3.3). The head is the first of the model's ``head_modules`` (the global
pooling and the classifier, by the model contract), and a forward pre-hook reads its input.

It changes nothing the run computes: a measurement runs between the backward pass and the update of a step, in
eval mode and without gradients, so BatchNorm's running statistics, the gradients in place and the random state
are untouched (dropout draws nothing in eval mode), and every module's train or eval mode is put back; the same
run with and without it ends with the same weights. Under torchrun every rank measures (the validation split is
sharded and summed); the zeros are rank 0's share of the images.

``RUN/watch.json``: ``{"every": K, "steps_per_epoch": S, "points": [[step, val_acc, zeros], ...]}``, ``step``
being the number of updates the measured weights had (an epoch's end: a multiple of S). It is rewritten after
each point (whole or not at all); a resumed run keeps the points up to where it resumes and measures the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cnnlab.train.atomic import write_atomic
from cnnlab.train.engine import Callback, StepInfo
from cnnlab.train.runfolder import WATCH


def zero_fraction(model: nn.Module, run: Callable[[nn.Module], Any]) -> tuple[Any, float | None]:
    """``run(model)`` and the fraction of exactly zero values among the inputs of the model's head over that
    call (None when the model has no ``head`` or it was not called)."""
    head_name = next(iter(getattr(model, "head_modules", ("head",))))
    counts = [0, 0]

    def count(_module: nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0]
        if isinstance(x, Tensor):
            counts[0] += int((x == 0).sum())
            counts[1] += x.numel()

    try:
        head = model.get_submodule(head_name)
    except AttributeError:
        return run(model), None
    handle = head.register_forward_pre_hook(count)
    try:
        out = run(model)
    finally:
        handle.remove()
    return out, counts[0] / counts[1] if counts[1] else None


class Watch(Callback):
    """Validate every ``every`` updates and at each epoch's end; record the accuracy and the head's zeros.

    ``validate(model)`` returns the validation split's scores (``"acc"``: the accuracy, or the pixel accuracy
    of a segmentation net); ``path`` is where the points go (None: kept in :attr:`points` only, as on the ranks
    other than 0).
    """

    def __init__(
        self,
        *,
        every: int,
        steps_per_epoch: int,
        validate: Callable[[nn.Module], dict[str, Any]],
        path: Path | None,
    ) -> None:
        self.every, self.steps_per_epoch, self.validate, self.path = every, steps_per_epoch, validate, path
        self.points: list[list[float | None]] = []
        if path is not None and path.is_file():
            saved = json.loads(path.read_text())
            if (saved.get("every"), saved.get("steps_per_epoch")) == (every, steps_per_epoch):
                self.points = saved["points"]
        self._started = False

    def _start(self, step: int) -> None:
        """Drop the points past ``step``, where this session starts (a process killed after its checkpoint)."""
        if not self._started:
            self.points = [p for p in self.points if p[0] <= step]
            self._started = True

    @torch.no_grad()
    def measure(self, model: nn.Module, step: int) -> None:
        modes = [(m, m.training) for m in model.modules()]
        try:
            scores, zeros = zero_fraction(model, self.validate)
        finally:
            for m, training in modes:
                m.training = training
        self.points.append([step, scores["acc"], zeros])
        if self.path is not None:
            payload = {"every": self.every, "steps_per_epoch": self.steps_per_epoch, "points": self.points}
            write_atomic(self.path, json.dumps(payload).encode())

    def _measured(self, step: int) -> bool:
        return any(p[0] == step for p in self.points)

    def on_step(self, info: StepInfo) -> None:  # the weights have had global_step updates
        step = info.global_step
        self._start(step)
        if step % self.every == 0 and step % self.steps_per_epoch != 0 and not self._measured(step):
            self.measure(info.model, step)

    def on_epoch_end(self, epoch: int, metrics: Any, model: nn.Module) -> None:
        step = epoch * self.steps_per_epoch
        if not self._measured(step):
            self.measure(model, step)


def watch_for(run_dir: Path | None, every: int, steps_per_epoch: int, validate: Callable[[nn.Module], Any]) -> Watch:
    """The :class:`Watch` of a run whose folder is ``run_dir`` (None on ranks other than 0)."""
    return Watch(
        every=every, steps_per_epoch=steps_per_epoch, validate=validate, path=run_dir / WATCH if run_dir else None
    )
