"""Shared pieces of the worker tests: settings on a temp folder, a worker built from them,
and what the store holds afterwards."""

from __future__ import annotations

import multiprocessing
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from mammotriage import defaults
from mammotriage.worker.config import WorkerSettings
from mammotriage.worker.factory import build_worker
from mammotriage.worker.loop import RunSummary, Worker
from mammotriage.worklist import ExamStatus, JobStatus, Store, StoredExam
from mammotriage.worklist.models import ExamRow, ImageRow, ScoreRow

REPO = Path(__file__).resolve().parents[1]
MODEL = defaults.model_path()
POLICY = defaults.policy_path()

#: The decode processes of the workers the tests build (isolated decoding, the default) are
#: forked from one forkserver per test process (``infer.prepare.process_context``). Preloaded
#: there, what a decode process runs (the decoders, the worker loop's thumbnail function) is
#: imported once per test process instead of once in each process of each worker's pool:
#: 1-2 s a worker. The decoding is as isolated as before; only the imports are shared.
FORKSERVER_PRELOAD = [
    "__main__",  # multiprocessing's own default
    "mammotriage.infer.prepare",
    "mammotriage.infer.engine",
    "mammotriage.worker.loop",
]
if sys.platform.startswith("linux"):
    multiprocessing.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)


def folder_settings(root: Path, **overrides: Any) -> WorkerSettings:
    """Settings for a folder source under ``root`` (incoming/, reports/, db.sqlite, work/)."""
    (root / "incoming").mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {
        "name": "test-worker",
        "database": str(root / "db.sqlite"),
        "model": MODEL,
        "policy": POLICY,
        "work_dir": root / "work",
        "thumbnails_dir": root / "thumbnails",
        "poll_seconds": 0.05,
        "source": {
            "kind": "folder",
            "path": root / "incoming",
            "quiet_seconds": 0.0,
            "reports": root / "reports",
        },
        "retry": {"max_attempts": 3, "base_seconds": 0.01, "max_seconds": 0.05},
        "log_format": "text",
        # MODEL is the packaged demonstration model, trained on synthetic data.
        "allow_demonstration_model": True,
    }
    values.update(overrides)
    return WorkerSettings(**values)


def copy_exams(source: Path, target: Path, n: int) -> list[Path]:
    """The first ``n`` exam folders of ``source`` copied into ``target``; their copies."""
    exams = sorted(p for p in source.iterdir() if p.is_dir())[:n]
    return [Path(shutil.copytree(exam, target / exam.name)) for exam in exams]


def hold_back_last_view(exam: Path, park: Path) -> Callable[[], None]:
    """Move the exam's last file to ``park`` (the study arrives without it); returns what
    brings it back (the late view arrives)."""
    late = sorted(exam.glob("*.dcm"))[-1]
    held_back = park / late.name
    late.rename(held_back)
    return lambda: held_back.rename(late)


def run_once(worker: Worker) -> RunSummary:
    return worker.run(threading.Event(), once=True)


def build(settings: WorkerSettings, **kwargs: Any) -> Worker:
    return build_worker(settings, **kwargs)


def count(store: Store, entity: Any) -> int:
    with store.db.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(entity)).scalar_one())


def assert_each_study_scored_once(store: Store, studies: set[str]) -> list[StoredExam]:
    """One scored exam, one score row (all from one model), four image rows and one DONE job
    per study; returns the exams."""
    exams = store.exams.all()
    assert sorted(e.study_instance_uid for e in exams) == sorted(studies)
    assert {e.status for e in exams} == {ExamStatus.SCORED}
    with store.db.engine.connect() as connection:
        per_exam = connection.execute(
            select(ScoreRow.exam_id, func.count()).group_by(ScoreRow.exam_id)
        ).all()
        models = connection.execute(select(ScoreRow.model_sha256).distinct()).scalars().all()
    assert count(store, ScoreRow) == len(studies)
    assert sorted(n for _, n in per_exam) == [1] * len(studies)
    assert len(models) == 1
    assert table_counts(store)["images"] == 4 * len(studies)
    jobs = store.jobs.all()
    assert sorted(j.study_instance_uid for j in jobs) == sorted(studies)
    assert {j.status for j in jobs} == {JobStatus.DONE}, [(j.id, j.status) for j in jobs]
    return exams


def table_counts(store: Store) -> dict[str, int]:
    return {
        "exams": count(store, ExamRow),
        "scores": count(store, ScoreRow),
        "images": count(store, ImageRow),
    }


def damaged_duplicate(good: Path, copy: Path) -> Path:
    """``good`` with the same UIDs, a later acquisition (so it wins the view's slot) and
    JPEG 2000 pixel data whose coded packets are overwritten: it does not decode."""
    import pydicom
    from pydicom.uid import JPEG2000Lossless

    ds = pydicom.dcmread(good)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress()
    ds.AcquisitionDateTime = "20991231235959"
    ds.compress(JPEG2000Lossless)
    data = bytearray(ds.PixelData)
    sod = data.find(b"\xff\x93")
    data[sod + 2 : -8] = b"\xff" * (len(data) - sod - 10)
    ds.PixelData = bytes(data)
    ds.save_as(copy)
    return copy


def hostile_corpus(folder: Path) -> list[Path]:
    """The reader's damaged-file corpus (tests/unit/dicom/test_damaged_files.py)."""
    import importlib

    try:
        corpus = importlib.import_module("unit.dicom.test_damaged_files").CORPUS
    except Exception:  # another engineer's module may be mid-edit: use what is there
        return []
    made = []
    for kind in corpus:
        (folder / kind.name).mkdir()
        try:
            built = kind.build(folder / kind.name)
        except Exception:
            continue
        target = folder / f"{kind.name}.dcm"
        if built.is_file():
            shutil.move(built, target)
            made.append(target)
        shutil.rmtree(folder / kind.name, ignore_errors=True)
    return made
