"""The registry's counts: each registered model's parameters and MACs at its default input size, as ``cnnlab
models`` lists them.

Counting builds every model on the meta device and walks it once (84 models: about 6 s on 2 cores, most of it
PyTorch's Python-level meta kernels and module construction). The counts are a function of cnnlab's source and
PyTorch's version alone, so they are kept in a cache file (``model-counts-KEY.json`` in :func:`cache_dir`) whose
KEY is a hash of exactly that: every ``.py`` file of the installed cnnlab package, byte for byte, and
``torch.__version__``. Any edit of the source gives a new key, so a stale count is never shown; a cache that is
missing, unreadable or corrupt is recomputed; where the folder cannot be written, the counts are computed each
time and nothing fails.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from cnnlab.analysis.analyze import count_macs
from cnnlab.errors import CnnlabError
from cnnlab.registry import meta_model

CACHE_ENV = "CNNLAB_CACHE_DIR"
"""Overrides the cache folder (tests point it at a temporary one; an empty value turns the cache off)."""


@dataclass(frozen=True)
class ModelCounts:
    """Parameters and MACs (FlopCounterMode FLOPs / 2) at the model's default input size; ``error`` says why the
    MACs could not be counted (``macs`` is then ``None``)."""

    params: int
    macs: int | None
    error: str | None = None


def cache_dir() -> Path | None:
    """``$CNNLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/cnnlab``, else ``~/.cache/cnnlab``; ``None`` when
    ``CNNLAB_CACHE_DIR`` is set but empty (no cache)."""
    if CACHE_ENV in os.environ:
        return Path(os.environ[CACHE_ENV]) if os.environ[CACHE_ENV] else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnnlab"


@functools.cache
def source_key() -> str:
    """A hash of every ``.py`` file of the cnnlab package (path and bytes) and of torch's version."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(torch.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def count_model(name: str) -> ModelCounts:
    """``name``'s counts, computed now on the meta device."""
    model = meta_model(name)
    params = sum(p.numel() for p in model.parameters())
    try:
        return ModelCounts(params, count_macs(model))
    except CnnlabError as e:  # one model that cannot be counted does not hide the others
        return ModelCounts(params, None, str(e))


def _cache_file() -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / f"model-counts-{source_key()}.json"


def _read(path: Path | None) -> dict[str, ModelCounts]:
    if path is None:
        return {}
    try:
        return {name: ModelCounts(**fields) for name, fields in json.loads(path.read_text()).items()}
    except (OSError, ValueError, TypeError, AttributeError):  # missing, unreadable or not what this module wrote
        return {}


def _write(path: Path, counts: dict[str, ModelCounts]) -> None:
    """The cache file, replaced whole (a reader never sees half of it); older keys' files removed. Any OSError
    (a read-only home, a full disk) leaves the cache as it was."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({name: asdict(c) for name, c in sorted(counts.items())}, f)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        for old in path.parent.glob("model-counts-*.json"):
            if old != path:
                old.unlink(missing_ok=True)


def model_counts(names: Sequence[str]) -> dict[str, ModelCounts]:
    """The counts of the registered models ``names``, from the cache where it holds them (computed and added to
    it where not)."""
    path = _cache_file()
    cached = _read(path)
    missing = [n for n in names if n not in cached]
    if missing:
        cached |= {name: count_model(name) for name in missing}
        if path is not None:
            _write(path, cached)
    return {name: cached[name] for name in names}
