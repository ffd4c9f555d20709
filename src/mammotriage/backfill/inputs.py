"""What a backfill reads: folder trees of DICOM files, or manifests of an exported archive.

A manifest is a CSV (header row) or Parquet file with a ``path`` column and, optionally,
an ``exam_id`` column: when a row names its exam, that is the exam the file belongs to
(the archive knew better than the headers); otherwise files are grouped as ``score`` groups
them. Relative paths in a manifest are relative to the manifest's own folder.

Paths are made absolute, so that every Ray worker (and a rerun from another folder) reads
the same files.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mammotriage.dicom import iter_files
from mammotriage.errors import ConfigError

MANIFEST_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class InputFile:
    """One file to score, and its exam when a manifest named it."""

    path: str
    exam_id: str | None = None


def _absolute(path: Path) -> str:
    return os.path.abspath(path.expanduser())  # normalises "..", which Path.absolute() keeps


def _manifest_rows(path: Path) -> list[dict[str, str | None]]:
    if path.suffix.lower() == ".csv":
        try:
            with path.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                header = reader.fieldnames or []
                rows = [dict(row) for row in reader]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ConfigError(f"manifest {path}: cannot read: {exc}") from exc
    else:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises its own kinds for a damaged file
            raise ConfigError(f"manifest {path}: cannot read as Parquet: {exc}") from exc
        header = table.column_names
        rows = [
            {k: None if v is None else str(v) for k, v in row.items()}
            for row in table.select([c for c in ("path", "exam_id") if c in header]).to_pylist()
        ] if "path" in header else []
    if "path" not in header:
        raise ConfigError(f"manifest {path}: no 'path' column (columns: {', '.join(header)})")
    return rows


def read_manifest(path: Path) -> list[InputFile]:
    """The files a manifest lists, with their exam ids where given.

    Raises
    ------
    ConfigError
        If the manifest cannot be read, has no ``path`` column, or a row has no path.
    """
    base = path.parent
    files = []
    for number, row in enumerate(_manifest_rows(path), start=2):
        raw = (row.get("path") or "").strip()
        if not raw:
            raise ConfigError(f"manifest {path}: row {number} has no path")
        file = Path(raw)
        exam_id = (row.get("exam_id") or "").strip() or None
        files.append(InputFile(_absolute(file if file.is_absolute() else base / file), exam_id))
    return files


def collect_inputs(paths: Sequence[Path]) -> list[InputFile]:
    """Every file to score: folders walked as ``score`` walks them, manifests read, other
    files taken as DICOM; each file once, in a deterministic order.

    Raises
    ------
    ConfigError
        If a path does not exist, a manifest is invalid, manifests name two different
        exams for one file, or there is nothing to score. (A file both in a folder and in a
        manifest that names its exam belongs to that exam.)
    """
    if not paths:
        raise ConfigError("nothing to backfill: give folders of DICOM files or manifests")
    found: dict[str, InputFile] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ConfigError(f"no such file or folder: {path}")
        if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
            listed = read_manifest(path)
        else:
            listed = [InputFile(_absolute(p)) for p in iter_files([path])]
        for item in listed:
            known = found.get(item.path)
            if known is not None and known.exam_id and item.exam_id != known.exam_id:
                if item.exam_id is None:
                    continue  # a manifest named its exam: that wins over the header
                raise ConfigError(
                    f"{item.path} is listed for two exams ({known.exam_id} and {item.exam_id})"
                )
            found[item.path] = item
    if not found:
        raise ConfigError(f"no files found in {', '.join(str(p) for p in paths)}")
    return [found[key] for key in sorted(found)]
