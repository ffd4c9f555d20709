"""A folder as a source: studies are the DICOM files dropped in a directory tree.

A study is complete when none of its files has appeared or changed for ``quiet_seconds``
(a modality or a copy job writing into the folder gives no other sign that it is done).
Files are grouped by the same key the scoring engine uses
(:func:`mammotriage.dicom.exams.exam_key`), so a file that is not DICOM at all becomes an
exam of its own and is accounted for, with its reason, like any other.

The index lives in memory; after a restart every file is seen anew, the studies are
offered again after one quiet period, and the store's fingerprint check keeps those
already scored from being scored twice.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mammotriage.atomic import atomic_write
from mammotriage.dicom.files import iter_files
from mammotriage.dicom.reader import read_exam_key
from mammotriage.errors import ConfigError, SourceError, SourceUnavailableError
from mammotriage.worker.source import Arrival, Poll

#: Names that writers use while a file is still being written; never read as DICOM.
_PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".filepart")


@dataclass
class _Entry:
    size: int
    mtime_ns: int
    seen_at: float
    study_key: str


class FolderSource:
    """Studies from files under ``path``; reports copied to ``reports_dir``.

    Parameters
    ----------
    path
        The folder watched (recursively). Files starting with ``.`` or ending in ``.tmp``,
        ``.part`` are ignored: writers use those names until a file is complete.
    quiet_seconds
        A study is complete when none of its files appeared or changed for this long.
    reports_dir
        Where :meth:`store_reports` writes (``<reports_dir>/<study>/``); it may not lie
        inside ``path``. ``None``: reports are not written anywhere.
    name
        Key of the source in the store; default ``folder:<absolute path>``.
    reoffer_seconds
        A complete study is offered again after this long even if unchanged, so that one
        whose enqueue failed (database down) is not forgotten; the store ignores a study
        offered again with the fingerprint it already has.
    clock
        Seconds, monotonic enough for the quiet period (tests pass a fake one).

    Raises
    ------
    ConfigError
        If ``path`` is not a directory, ``quiet_seconds`` is negative or ``reports_dir`` lies
        inside ``path``.
    """

    def __init__(
        self,
        path: Path,
        *,
        quiet_seconds: float,
        reports_dir: Path | None,
        name: str | None = None,
        reoffer_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path).resolve()
        if not self.path.is_dir():
            raise ConfigError(f"folder source {self.path} is not a directory")
        if not quiet_seconds >= 0:
            raise ConfigError(f"quiet_seconds must be >= 0, got {quiet_seconds!r}")
        self.reports_dir = None if reports_dir is None else Path(reports_dir).resolve()
        if self.reports_dir is not None and self.reports_dir.is_relative_to(self.path):
            raise ConfigError(
                f"reports directory {self.reports_dir} lies inside the watched folder {self.path}:"
                " the reports would be read back as new studies"
            )
        self.quiet_seconds = float(quiet_seconds)
        self.name = name or f"folder:{self.path}"
        self._clock = clock
        self._files: dict[Path, _Entry] = {}
        #: The fingerprint each study was last offered with (in memory, see the module doc).
        self._offered: dict[str, tuple[str, float]] = {}
        self.reoffer_seconds = float(reoffer_seconds)

    # -- Source ---------------------------------------------------------------------------

    def poll(self, cursor: str | None) -> Poll:
        """Studies whose files have all been quiet for ``quiet_seconds``; ``cursor`` unused.

        Raises
        ------
        SourceUnavailableError
            If the folder is gone (a share unmounted): not "nothing arrived".
        """
        if not self.path.is_dir():
            raise SourceUnavailableError(f"folder source {self.path} is gone (unmounted?)")
        now = self._clock()
        self._scan(now)
        studies: dict[str, list[tuple[Path, _Entry]]] = {}
        for path, entry in self._files.items():
            studies.setdefault(entry.study_key, []).append((path, entry))
        arrivals = []
        waiting = 0
        arrived_at = datetime.now(timezone.utc)
        for key, files in sorted(studies.items()):
            if now - max(entry.seen_at for _, entry in files) < self.quiet_seconds:
                waiting += 1
                continue
            fingerprint = _fingerprint(self.path, files)
            offered = self._offered.get(key)
            if offered and offered[0] == fingerprint and now - offered[1] < self.reoffer_seconds:
                continue
            self._offered[key] = (fingerprint, now)
            arrivals.append(Arrival(key, fingerprint, arrived_at))
        for gone in set(self._offered) - set(studies):
            del self._offered[gone]
        return Poll(tuple(arrivals), waiting=waiting)

    def fetch(self, study_key: str, into: Path) -> list[Path]:
        """The study's files, in place (``into`` is not used): nothing is copied."""
        paths = sorted(p for p, e in self._files.items() if e.study_key == study_key)
        if not paths:
            self._scan(self._clock())
            paths = sorted(p for p, e in self._files.items() if e.study_key == study_key)
        present = [p for p in paths if p.exists()]
        if not present:
            raise SourceError(f"study {_short(study_key)} has no files left in {self.path}")
        return present

    def store_reports(self, study_key: str, reports: Sequence[Path]) -> str:
        """Copy the reports to ``<reports_dir>/<study>/`` (atomically, one file at a time)."""
        if self.reports_dir is None:
            return "not stored (no reports directory configured)"
        target = self.reports_dir / _safe_name(study_key)
        try:
            target.mkdir(parents=True, exist_ok=True)
            for report in reports:
                copy_atomically(Path(report), target / Path(report).name)
        except OSError as exc:
            raise SourceUnavailableError(f"cannot write reports to {target}: {exc}") from exc
        return str(target)

    def close(self) -> None:
        self._files.clear()

    # -- internals ------------------------------------------------------------------------

    def _scan(self, now: float) -> None:
        seen: set[Path] = set()
        try:
            candidates = list(iter_files([self.path]))
        except OSError as exc:
            raise SourceUnavailableError(f"cannot list {self.path}: {exc}") from exc
        for path in candidates:
            if path.name.endswith(_PARTIAL_SUFFIXES):
                continue
            try:
                stat = path.stat()
            except OSError:
                continue  # removed between listing and stat
            seen.add(path)
            known = self._files.get(path)
            if known and (known.size, known.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
                continue
            key, _ = read_exam_key(path)
            self._files[path] = _Entry(stat.st_size, stat.st_mtime_ns, now, key)
        for gone in set(self._files) - seen:
            del self._files[gone]


def copy_atomically(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target`` so that readers see the old file or the whole new one."""
    # A copy cut short by a kill leaves its temporary file; only one job writes this name.
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    with atomic_write(target) as out, source.open("rb") as src:
        shutil.copyfileobj(src, out)
    return target


def _fingerprint(root: Path, files: list[tuple[Path, _Entry]]) -> str:
    digest = hashlib.sha256()
    for path, entry in sorted(files, key=lambda item: item[0]):
        digest.update(f"{path.relative_to(root)}\0{entry.size}\0{entry.mtime_ns}\n".encode())
    return f"files:{len(files)}:{digest.hexdigest()[:16]}"


def _safe_name(study_key: str) -> str:
    """A folder name from a study key: UIDs are digits and dots; anything else is hashed."""
    if study_key and all(c.isdigit() or c == "." for c in study_key) and len(study_key) <= 64:
        return study_key
    if study_key.replace("-", "").isalnum() and len(study_key) <= 64:
        return study_key
    return hashlib.sha256(study_key.encode()).hexdigest()[:32]


def _short(study_key: str) -> str:
    """A study key shortened for messages (no patient data is in it, but it is long)."""
    return study_key if len(study_key) <= 24 else f"...{study_key[-12:]}"


__all__ = ["FolderSource", "copy_atomically"]
