"""Files that are whole or absent, and a full disk as one clear error.

:func:`write_atomic` writes to a temporary file beside the target (``.NAME.XXXXXXXX.tmp``), flushes it to disk,
then renames it over the target: ``os.replace`` is atomic on POSIX and Windows, so a crash, a kill or a full
disk leaves the previous file intact. A temporary file left by a killed process is removed by the next run that
takes the folder's lock (:func:`remove_temporaries`). A full disk (ENOSPC, or EDQUOT for a quota) while a run
writes is a TrainingError that names the folder and its free space.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cnnlab.errors import TrainingError

TMP_SUFFIX = ".tmp"
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)
_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it), then put back
os.umask(_UMASK)


def format_bytes(n: int) -> str:
    """``"0 B"``, ``"12.3 KiB"``, ``"4.0 GiB"``."""
    if n < 1024:
        return f"{n} B"
    size, units = n / 1024, ["KiB", "MiB", "GiB", "TiB"]
    while size >= 1024 and len(units) > 1:
        size, units = size / 1024, units[1:]
    return f"{size:.1f} {units[0]}"


@contextlib.contextmanager
def full_disk_is_an_error(folder: Path, what: str) -> Iterator[None]:
    """Turn an OSError of a full disk while writing ``what`` into ``folder`` into a TrainingError that says so."""
    try:
        yield
    except OSError as e:
        if e.errno not in FULL_DISK:
            raise
        try:
            free = format_bytes(shutil.disk_usage(folder).free)
        except OSError:
            free = "unknown space"
        kept = (
            f"the previous {what} is intact; free some space, then continue with --resume {folder}"
            if (folder / "last.pt").is_file()
            else "nothing already written was changed; free some space, then start the run again"
        )
        raise TrainingError(
            f"the disk holding {str(folder)!r} is full ({free} free): {what} could not be written ({e.strerror}); "
            + kept
        ) from None


def write_atomic(path: Path, *chunks: bytes | memoryview) -> Path:
    """Write ``chunks`` one after the other to ``path``, all or nothing (see the module docstring)."""
    with full_disk_is_an_error(path.parent, path.name):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
        try:
            os.chmod(tmp, 0o666 & ~_UMASK)  # as open() would create it (mkstemp makes it private)
            try:
                for chunk in chunks:
                    view = memoryview(chunk).cast("B")
                    while view:
                        view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files that :func:`write_atomic` left in ``folder`` when its process was killed; call
    it only while holding the folder's lock (no other writer is then halfway through one)."""
    stale = sorted(p for p in folder.glob(f".*.*{TMP_SUFFIX}") if p.is_file())
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
