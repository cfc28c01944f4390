"""Checkpoints that are never half-written, carry a checksum, and never run code.

A checkpoint is a dict of tensors and plain values: ``model`` (state_dict), ``optimizer``, ``scheduler``,
``epoch`` and ``step`` (where the run goes on), ``partial`` (each rank's totals of an interrupted epoch),
``world_size``, ``rng`` (the torch generators' states), ``config`` (the resolved :class:`TrainConfig` as a dict),
``meta`` (model name, classes, input size, normalisation) and ``history``.

On disk it is ``torch.save``'s zip file followed by a 48-byte seal: :data:`SEAL` and the SHA-256 of every byte
before it. torch's zip reader ignores the seal (``torch.load`` still reads the file) but also ignores many damaged
bytes, loading changed values without a word; :func:`load_checkpoint` refuses a file whose bytes do not hash to
its seal. The file is written atomically (:func:`cnnlab.train.atomic.write_atomic`), so a crash leaves the
previous checkpoint intact, and read with ``torch.load(weights_only=True)``, which unpickles nothing but tensors
and plain containers: a checksum proves a file undamaged, not harmless.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

from cnnlab.errors import TrainingError
from cnnlab.train.atomic import write_atomic

BEST, LAST = "best.pt", "last.pt"
SEAL = b"\n#cnnlab-sha256\n"  # 16 bytes, then the 32-byte digest, at the end of every checkpoint
SEAL_SIZE = len(SEAL) + hashlib.sha256().digest_size
_CHUNK = 1 << 22  # bytes hashed per read (4 MiB)


def seal(payload: bytes | memoryview) -> bytes:
    """The 48 bytes that follow ``payload`` in a checkpoint file."""
    return SEAL + hashlib.sha256(payload).digest()


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` to ``path`` atomically, sealed with its checksum."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getbuffer()
    return write_atomic(path, payload, seal(payload))


def _seal_of(f: IO[bytes]) -> tuple[int, bytes | None]:
    """(the file's size, the digest of its seal, or None when it does not end with one)."""
    size = os.fstat(f.fileno()).st_size
    f.seek(max(0, size - SEAL_SIZE))
    tail = f.read()
    return size, tail[len(SEAL) :] if len(tail) == SEAL_SIZE and tail.startswith(SEAL) else None


def has_seal(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file that ends with a seal: a cnnlab checkpoint (which :func:`open_sealed` checks)."""
    if not Path(path).is_file():
        return False
    with Path(path).open("rb") as f:
        return _seal_of(f)[1] is not None


def other_checkpoint(path: Path) -> str:
    """For ``best.pt`` or ``last.pt`` of a run folder whose other checkpoint exists: what to use instead (", or
    use RUN/last.pt, the run's other checkpoint"); else ``""``."""
    other = {BEST: LAST, LAST: BEST}.get(path.name)
    if other is None or not (path.parent / other).is_file():
        return ""
    return f"; use {path.parent / other} instead, the run's other checkpoint"


@contextlib.contextmanager
def open_sealed(path: Path) -> Iterator[IO[bytes]]:
    """``path`` opened for reading once its bytes match its seal; a TrainingError otherwise, which names the run's
    other checkpoint when there is one."""
    with path.open("rb") as f:
        size, want = _seal_of(f)
        if want is None:
            raise TrainingError(
                f"{str(path)!r} carries no cnnlab checksum: it is not a cnnlab checkpoint, or its end is damaged or "
                f"cut off ({size:,} bytes)"
                + (other_checkpoint(path) or ". A state_dict file from elsewhere goes to --pretrained")
            )
        digest = hashlib.sha256()
        f.seek(0)
        left = size - SEAL_SIZE
        while left > 0 and (chunk := f.read(min(_CHUNK, left))):
            digest.update(chunk)
            left -= len(chunk)
        if digest.digest() != want:
            raise TrainingError(
                f"the checkpoint {str(path)!r} is damaged: its bytes do not match its checksum (flipped or lost "
                "bytes on disk or in a copy)" + (other_checkpoint(path) or "; use another checkpoint")
            )
        f.seek(0)
        yield f


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
    """The checkpoint's dict, checked against its seal and read with ``weights_only=True``; a TrainingError
    when it is damaged or not a cnnlab one."""
    path = resolve_checkpoint(run_or_ckpt, prefer=prefer)
    with open_sealed(path) as f:
        try:
            state = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:  # a sealed file that holds arbitrary objects, or one written damaged
            plain = "weights_only" not in str(e)
            why = "it is corrupt" if plain else "it holds objects other than tensors and plain values"
            raise TrainingError(
                f"cannot read the checkpoint {str(path)!r}: {why} ({type(e).__name__}){other_checkpoint(path)}"
            ) from None
    missing = [k for k in ("model", "config", "meta") if not isinstance(state, dict) or k not in state]
    if missing:
        raise TrainingError(f"{str(path)!r} is not a cnnlab training checkpoint (no {', '.join(missing)})")
    state["path"] = str(path)
    return state


def misfit(model: torch.nn.Module, state: dict[str, Any]) -> str | None:
    """Why the checkpoint's weights do not fit ``model``, or None: it "holds a <model>, not a <model>", or it
    "does not fit <model> with model_kwargs ...: N tensors differ (...)" (another variant of the model)."""
    name = getattr(model, "model_name", type(model).__name__)
    if state["meta"].get("model") not in (None, name):
        return f"holds a {state['meta']['model']}, not a {name}"
    have, want = state["model"], model.state_dict()
    problems = [
        f"{k} is {tuple(have[k].shape)}, the model's {tuple(v.shape)}"
        for k, v in want.items()
        if k in have and have[k].shape != v.shape
    ]
    problems += [f"missing {k}" for k in want if k not in have] + [f"unexpected {k}" for k in have if k not in want]
    if not problems:
        return None
    return (
        f"does not fit {name} with model_kwargs {state['meta'].get('model_kwargs', {})}: {len(problems)} tensors "
        f"differ ({'; '.join(problems[:3])}{' ...' if len(problems) > 3 else ''})"
    )


def load_model_state(model: torch.nn.Module, state: dict[str, Any]) -> None:
    """Load the checkpoint's weights into ``model``; a TrainingError that names the difference otherwise."""
    why = misfit(model, state)
    if why is not None:
        other = state["meta"].get("model")
        hint = f"pass --model {other} or another checkpoint"
        if other in (None, getattr(model, "model_name", type(model).__name__)):
            hint = "its weights come from another variant of the model"
        raise TrainingError(f"the checkpoint {state.get('path', '')!r} {why}; {hint}")
    model.load_state_dict(state["model"])


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
