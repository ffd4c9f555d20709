"""Stage 1 of a backfill: the index. Headers only, grouped into exams as ``score`` groups
them, written as a sharded, deterministic Parquet manifest.

The same inputs always give the same manifest: exams sorted by id, ``shard_size`` exams per
shard, each exam's files sorted. Every later stage and every rerun works from this
manifest, so a resumed run scores exactly the exams of the first one, each once.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mammotriage.backfill.inputs import InputFile
from mammotriage.backfill.schema import MANIFEST_SCHEMA

#: Where a manifest names the exam, the exam id's source says so.
FROM_MANIFEST = "manifest"
MANIFEST_DIR = "manifest"


@dataclass(frozen=True)
class ManifestExam:
    """One exam to score: its id, how the id was found, and its files."""

    shard: int
    exam_id: str
    exam_id_source: str
    paths: tuple[str, ...]


def header_keys(batch: dict[str, Any]) -> dict[str, Any]:
    """Each file's exam key from its header alone (a Ray Data batch function, also called
    directly with a list of paths).

    ``batch["path"]`` in, the same paths with ``exam_id`` and ``exam_id_source`` out. A file
    that cannot be read becomes an exam of its own (as in ``score``), never an error.
    """
    from mammotriage.dicom import exam_key
    from mammotriage.infer.prepare import read_header

    paths = [str(p) for p in batch["path"]]
    keys = [exam_key(read_header(Path(p))) for p in paths]
    return {
        "path": paths,
        "exam_id": [k[0] for k in keys],
        "exam_id_source": [k[1] for k in keys],
    }


def group(
    files: Sequence[InputFile], keys: Iterable[tuple[str, str, str]], shard_size: int
) -> list[ManifestExam]:
    """Exams from the files: a manifest's exam id where given, else the header's key
    (``keys``: ``(path, exam_id, source)`` for each file without one); sorted, sharded."""
    if shard_size < 1:
        raise ValueError(f'Argument "shard_size" must be >= 1, got {shard_size!r}.')
    exams: dict[str, tuple[str, list[str]]] = {}
    for file in files:
        if file.exam_id is not None:
            exams.setdefault(file.exam_id, (FROM_MANIFEST, []))[1].append(file.path)
    for path, exam_id, source in keys:
        exams.setdefault(exam_id, (source, []))[1].append(path)
    ordered = sorted(exams)
    return [
        ManifestExam(n // shard_size, exam_id, exams[exam_id][0], tuple(sorted(exams[exam_id][1])))
        for n, exam_id in enumerate(ordered)
    ]


def write_manifest(out: Path, exams: Sequence[ManifestExam]) -> Path:
    """Write the manifest under ``out/manifest``, whole or not at all (built aside, renamed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mammotriage.backfill.schema import shard_name

    target = out / MANIFEST_DIR
    building = out / f".{MANIFEST_DIR}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    shards: dict[int, list[ManifestExam]] = {}
    for exam in exams:
        shards.setdefault(exam.shard, []).append(exam)
    for shard, members in shards.items():
        table = pa.Table.from_pylist(
            [
                {
                    "shard": shard,
                    "exam_id": e.exam_id,
                    "exam_id_source": e.exam_id_source,
                    "paths": list(e.paths),
                }
                for e in members
            ],
            schema=MANIFEST_SCHEMA,
        )
        pq.write_table(table, building / f"shard-{shard_name(shard)[len('part-'):]}")
    os.replace(building, target)
    return target


def manifest_files(out: Path) -> dict[int, Path]:
    """Shard number -> manifest file, for a written manifest."""
    found = {}
    for path in sorted((out / MANIFEST_DIR).glob("shard-*.parquet")):
        found[int(path.stem.removeprefix("shard-"))] = path
    return found


def read_manifest_counts(out: Path) -> dict[int, int]:
    """Shard number -> number of exams in it."""
    import pyarrow.parquet as pq

    return {shard: pq.read_metadata(path).num_rows for shard, path in manifest_files(out).items()}
