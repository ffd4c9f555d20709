"""Writing a file so that readers see the old file or the whole new one, never part of it.

Reports, received DICOM, thumbnails and metrics files are all picked up by other programs
(a PACS sender, the reading service, a metrics collector) while we write; a crash must
leave no truncated file under the final name. Standard library only, so that every package
(``dicom/`` included) may use it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` survive a power cut (POSIX only)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: Path, *, mode: int | None = None) -> Iterator[BinaryIO]:
    """A binary handle whose bytes become ``path`` when the block ends without an error.

    They go to a temporary file in ``path``'s own directory (named ``.<name>.*.tmp``, which
    folder scans skip), are flushed and fsynced, and the file is renamed over ``path``
    (atomic on one file system); the directory entry is fsynced too. On an error the
    temporary file is removed and the error raised. ``mode``: permissions of the new file
    (e.g. ``0o640`` for patient data). Missing parent folders are made.

    Raises
    ------
    OSError
        The disk is full or not writable.
    """
    path = Path(path)
    created = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    if created:
        fsync_directory(path.parent.parent)


__all__ = ["atomic_write", "fsync_directory"]
