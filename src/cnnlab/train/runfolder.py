"""A run folder has one writer: it is locked while a run writes it, and a finished run is never overwritten.

``RUN/.lock`` holds an exclusive POSIX lock (``fcntl.lockf``) for as long as a run writes ``RUN``, and records
who holds it (pid, host, start time, command). The operating system releases the lock when its process ends,
however it ends, so a killed run never blocks its resume; unlike ``flock``, the lock is not inherited by forked
processes (data-loader workers), so it goes with the process that took it. A second writer is refused with a
message naming the first. POSIX locks do not exclude their own process, so folders this process holds are also
kept in a set.

A folder that holds a run (any of :data:`RUN_FILES`) is taken only to resume it, or with ``overwrite`` (which
first deletes those files, and nothing else). Taking the lock removes the temporary files that a killed writer
left (:func:`cnnlab.train.atomic.remove_temporaries`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError, TrainingError
from cnnlab.train.atomic import full_disk_is_an_error, remove_temporaries
from cnnlab.train.checkpoint import BEST, LAST
from cnnlab.train.config import TrainConfig

LOCK = ".lock"
WATCH = "watch.json"  # validations within epochs (cnnlab.train.watch)
RUN_FILES = (LAST, BEST, "metrics.csv", "config.yaml", "results.json", "curves.png", "tb", WATCH)  # what a run writes
_HELD: set[Path] = set()  # folders locked by this process (a POSIX lock does not exclude its own process)
_HELD_GUARD = threading.Lock()


def check_folder(path: str | os.PathLike[str], *, what: str) -> None:
    """A ConfigError when ``path`` or a folder above it is a file: no folder can be made there."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            where = "is a file" if p == path else f"is inside {str(p)!r}, which is a file"
            raise ConfigError(f"{what} {str(path)!r} {where}; give a folder (it is created when missing)")


def run_files(folder: Path) -> list[str]:
    """The names of :data:`RUN_FILES` present in ``folder``."""
    return [name for name in RUN_FILES if (folder / name).exists()]


def check_run_folder(folder: Path, *, resume: bool, overwrite: bool) -> None:
    """A ConfigError when ``folder`` holds a run and the run neither resumes nor overwrites it."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"the run folder {str(folder)!r} is a file; give another --run-name or --out-dir")
    found = run_files(folder) if folder.is_dir() else []
    if found and not (resume or overwrite):
        raise ConfigError(
            f"the run folder {str(folder)!r} already holds a run ({', '.join(found)}); continue it with "
            f"--resume {folder}, start it again with --overwrite (deletes those files), or give another --run-name"
        )


AUTO = "auto"  # --resume auto: continue the run named by --out-dir and --run-name if it can, else start it


def planned_folder(config: TrainConfig) -> Path | None:
    """The folder the run will write: the resumed one, ``out_dir/run_name``, or None (a new name, made later)."""
    if config.resume:
        path = Path(config.resume)
        return path if path.is_dir() else path.parent
    return Path(config.out_dir) / config.run_name if config.run_name else None


def _holder() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": " ".join(sys.argv),
    }


def _describe(record: bytes) -> str:
    try:
        h = json.loads(record)
        return f"pid {h['pid']} on {h['host']}, since {h['since']} ({h['command']})"
    except (ValueError, KeyError, TypeError):
        return "a process that has not yet written its name"


class RunLock:
    """The lock of one run folder, taken on creation (a TrainingError naming the holder when another has it)."""

    def __init__(self, folder: Path) -> None:
        self.path, self._key = folder, folder.resolve()
        with _HELD_GUARD:
            if self._key in _HELD:
                raise TrainingError(f"{str(folder)!r} is being written by another run in this process ({os.getpid()})")
            with full_disk_is_an_error(folder, LOCK):
                fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _describe(os.pread(fd, 4096, 0))
                os.close(fd)
                raise TrainingError(
                    f"{str(folder)!r} is being written by another run: {holder}. Wait for it to end (or stop it: it "
                    "saves last.pt on SIGTERM), or give another --run-name"
                ) from None
            _HELD.add(self._key)
        self.fd = fd
        with full_disk_is_an_error(folder, LOCK):
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(_holder()).encode(), 0)

    def release(self) -> None:
        if self.fd < 0:
            return
        with _HELD_GUARD:
            os.close(self.fd)  # closing the file releases its POSIX lock
            self.fd = -1
            _HELD.discard(self._key)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _new_folder(out_dir: Path, name: str) -> Path:
    """``out_dir/name``, or ``name-2``, ``name-3`` ... when taken, created here (``mkdir`` claims it atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    candidate, k = name, 1
    while True:
        try:
            (out_dir / candidate).mkdir()
            return out_dir / candidate
        except FileExistsError:
            k += 1
            candidate = f"{name}-{k}"


def claim_run_folder(
    folder: Path | None, *, out_dir: str, auto_name: str, resume: bool, overwrite: bool
) -> tuple[RunLock, list[str]]:
    """Create (when needed) and lock the run folder: ``folder``, or a new one named after ``auto_name`` in
    ``out_dir`` when ``folder`` is None. Return the lock and what was cleared (stale temporaries, overwritten
    files) for the log."""
    check_folder(out_dir, what="out_dir")
    with full_disk_is_an_error(Path(out_dir), "the run folder"):
        if folder is None:
            folder = _new_folder(Path(out_dir), auto_name)
        else:
            folder.mkdir(parents=True, exist_ok=True)
    lock = RunLock(folder)
    try:
        check_run_folder(folder, resume=resume, overwrite=overwrite)  # again, now that no one else can write
        cleared = [p.name for p in remove_temporaries(folder)]
        if overwrite:
            for name in run_files(folder):
                shutil.rmtree(folder / name) if (folder / name).is_dir() else (folder / name).unlink()
                cleared.append(name)
    except BaseException:
        lock.release()
        raise
    return lock, cleared
