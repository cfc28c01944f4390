"""Checkpoints that are never half-written and never run code.

A checkpoint is a dict of tensors and plain values: ``model`` (state_dict), ``optimizer``, ``scheduler``,
``epoch`` and ``step`` (where the run goes on), ``rng`` (the torch generators' states), ``config`` (the resolved
:class:`TrainConfig` as a dict), ``meta`` (model name, classes, input size, normalisation) and ``history``.
It is written to a temporary file in the same folder, flushed to disk, then renamed over the target
(``os.replace`` is atomic on POSIX and Windows), so a crash leaves the previous checkpoint intact. It is read
with ``torch.load(weights_only=True)``, which unpickles nothing but tensors and plain containers.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import TrainingError

BEST, LAST = "best.pt", "last.pt"


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def resolve_checkpoint(run_or_ckpt: str | os.PathLike[str], *, prefer: str = LAST) -> Path:
    """A checkpoint file, or ``prefer`` (then the other one) inside a run folder."""
    path = Path(run_or_ckpt)
    if path.is_dir():
        for name in (prefer, BEST if prefer == LAST else LAST):
            if (path / name).is_file():
                return path / name
        raise TrainingError(f"the run folder {str(path)!r} holds no checkpoint ({LAST} or {BEST})")
    if not path.is_file():
        raise TrainingError(f"no checkpoint or run folder at {str(path)!r}")
    return path


def load_checkpoint(run_or_ckpt: str | os.PathLike[str], *, prefer: str = LAST) -> dict[str, Any]:
    """The checkpoint's dict, read with ``weights_only=True``; a TrainingError when it is not a cnnlab one."""
    path = resolve_checkpoint(run_or_ckpt, prefer=prefer)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, garbage, a pickle holding arbitrary objects
        why = "it holds objects other than tensors and plain values" if "weights_only" in str(e) else "it is corrupt"
        raise TrainingError(f"cannot read the checkpoint {str(path)!r}: {why} ({type(e).__name__})") from e
    missing = [k for k in ("model", "config", "meta") if not isinstance(state, dict) or k not in state]
    if missing:
        raise TrainingError(f"{str(path)!r} is not a cnnlab training checkpoint (no {', '.join(missing)})")
    state["path"] = str(path)
    return state


def load_model_state(model: torch.nn.Module, state: dict[str, Any]) -> None:
    """Load the checkpoint's weights into ``model``; a TrainingError that names the difference otherwise."""
    name = getattr(model, "model_name", type(model).__name__)
    if state["meta"].get("model") not in (None, name):
        raise TrainingError(
            f"{state.get('path', 'the checkpoint')!r} holds a {state['meta']['model']}, not a {name}; "
            f"pass --model {state['meta']['model']} or another checkpoint"
        )
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise TrainingError(f"the checkpoint does not fit {name}: {str(e).splitlines()[0]} ...") from e


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
