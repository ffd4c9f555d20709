"""Worklist store on SQLite and PostgreSQL (``store_url`` in tests/conftest.py): schema,
idempotent jobs and scores, claims, order, audit."""

from __future__ import annotations

import threading
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from mammotriage.dicom.model import Laterality, ViewPosition
from mammotriage.infer.scores import ExamScore, Finding, ImageScore
from mammotriage.triage import ExamForTriage, TriagePolicy, decide
from mammotriage.worklist import JobStatus, Store
from mammotriage.worklist.models import AuditRow, ExamRow, FindingRow, ImageRow, JobRow, ScoreRow

NOW = datetime(2024, 3, 11, 12, 0, tzinfo=timezone.utc)
POLICY = TriagePolicy(version="test-1", max_wait_days=5)
SHA_A = "a" * 64
SHA_B = "b" * 64


def exam_score(study: str, category: int, sha: str = SHA_A, finding: int = 30) -> ExamScore:
    images = tuple(
        ImageScore(
            path=Path(f"/data/{study}/{lat.value}{view.value}.dcm"),
            sop_instance_uid=f"{study}.{i}",
            laterality=lat,
            view=view,
            usable=True,
            reason=None,
            probability=category / 10 - 0.05,
        )
        for i, (lat, view) in enumerate(
            (lat, view)
            for lat in (Laterality.LEFT, Laterality.RIGHT)
            for view in (ViewPosition.CC, ViewPosition.MLO)
        )
    )
    findings = (
        Finding(
            f"{study}.0", None, Laterality.LEFT, ViewPosition.CC, (1.0, 2.0, 30.0, 40.0), finding
        ),
    )
    return ExamScore(
        exam_id=study,
        score=category * 10 - 5,
        category=category,
        partial=False,
        breasts={"L": category * 10 - 5, "R": 1.0},
        findings=findings,
        images=images,
        model_name="test-model",
        model_sha256=sha,
    )


def save(store: Store, study: str, category: int, waited: timedelta, sha: str = SHA_A) -> uuid.UUID:
    score = exam_score(study, category, sha)
    triage_exam = ExamForTriage(
        exam_id=study,
        score=float(score.score or 0),
        category=category,
        max_finding_score=score.max_finding_score,
        partial=False,
        received_at=NOW - waited,
    )
    return store.exams.save_score(score, decide(POLICY, triage_exam), NOW - waited)


def count(store: Store, model: type) -> int:
    with store.db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def test_migrate_creates_every_table(store: Store) -> None:
    tables = set(inspect(store.db.engine).get_table_names())
    assert {
        "exams",
        "images",
        "scores",
        "findings",
        "assignments",
        "decisions",
        "jobs",
        "audit_log",
    } <= tables
    assert "alembic_version" in tables


def test_migrate_twice_is_a_no_op(store: Store) -> None:
    from mammotriage.worklist.models import Role

    def schema() -> tuple[list[str], dict[str, list[str]]]:
        with store.db.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version")
            versions = list(rows.scalars())
            inspector = inspect(conn)
            tables = {
                t: sorted(c["name"] for c in inspector.get_columns(t))
                for t in inspector.get_table_names()
            }
        return versions, tables

    store.users.add("kept-reader", Role.RADIOLOGIST, None)
    before = schema()
    store.migrate()
    assert schema() == before
    assert len(before[0]) == 1  # one revision, at head, not re-stamped or duplicated
    kept = store.users.get("kept-reader")
    assert kept is not None and kept.role is Role.RADIOLOGIST  # data survives


def test_migration_matches_the_models(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from mammotriage.worklist.models import Base

    with store.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_sqlite_uses_wal(store: Store) -> None:
    with store.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_patient_identifiers_live_in_the_exams_row_only(store: Store) -> None:
    """The documented place (models.py): what a reader finds the exam by in the PACS, on
    the exam's row; no other table has a patient or accession column."""
    inspector = inspect(store.db.engine)
    identifying = {
        (table, column["name"])
        for table in inspector.get_table_names()
        for column in inspector.get_columns(table)
        if any(word in column["name"].lower() for word in ("patient", "accession"))
    }
    assert identifying == {
        ("exams", "patient_id"),
        ("exams", "patient_name"),
        ("exams", "accession_number"),
    }


def test_enqueue_is_idempotent(store: Store) -> None:
    first = store.jobs.enqueue("folder", "1.2.3")
    second = store.jobs.enqueue("folder", "1.2.3")
    assert first == second
    assert first.status is JobStatus.QUEUED
    assert count(store, JobRow) == 1


def test_enqueue_requeues_a_done_job(store: Store) -> None:
    store.jobs.enqueue("folder", "1.2.3")
    job = store.jobs.claim("w1")
    assert job is not None
    assert store.jobs.done(job).status is JobStatus.DONE
    again = store.jobs.enqueue("folder", "1.2.3")
    assert again.id == job.id
    assert again.status is JobStatus.QUEUED


def test_enqueue_while_running_runs_the_job_again(store: Store) -> None:
    store.jobs.enqueue("folder", "1.2.3")
    job = store.jobs.claim("w1")
    assert job is not None
    assert store.jobs.enqueue("folder", "1.2.3").status is JobStatus.RUNNING
    assert store.jobs.done(job).status is JobStatus.QUEUED


def test_claim_returns_each_job_once_then_none(store: Store) -> None:
    ids = {store.jobs.enqueue("folder", f"1.2.{i}").id for i in range(3)}
    claimed = [store.jobs.claim("w1") for _ in range(3)]
    assert {job.id for job in claimed if job is not None} == ids
    assert all(job is not None and job.status is JobStatus.RUNNING for job in claimed)
    assert all(job is not None and job.claimed_by == "w1" and job.attempts == 1 for job in claimed)
    assert store.jobs.claim("w1") is None


def test_concurrent_claims_never_share_a_job(store: Store) -> None:
    for i in range(40):
        store.jobs.enqueue("folder", f"1.2.{i}")
    got: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def worker(name: str) -> None:
        mine: list[int] = []
        start.wait()
        while (job := store.jobs.claim(name)) is not None:
            mine.append(job.id)
        got[name] = mine

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [job_id for ids in got.values() for job_id in ids]
    assert len(every) == 40
    assert len(set(every)) == 40


def test_stale_running_job_is_reclaimed(store_url: str) -> None:
    store = Store(store_url, claim_timeout=timedelta(minutes=10))
    store.migrate()
    store.jobs.enqueue("folder", "1.2.3")
    first = store.jobs.claim("crashed", now=NOW)
    assert first is not None
    assert store.jobs.claim("w2", now=NOW + timedelta(minutes=5)) is None
    again = store.jobs.claim("w2", now=NOW + timedelta(minutes=11))
    assert again is not None
    assert again.id == first.id
    assert again.claimed_by == "w2"
    assert again.attempts == 2
    store.close()


def test_finish_sets_status_and_error(store: Store) -> None:
    store.jobs.enqueue("folder", "1.2.3")
    store.jobs.enqueue("folder", "1.2.4")
    ok, bad = store.jobs.claim("w1"), store.jobs.claim("w1")
    assert ok is not None and bad is not None
    assert store.jobs.done(ok).status is JobStatus.DONE
    failed = store.jobs.fail(bad, "PACS unreachable")
    assert failed.status is JobStatus.FAILED
    assert failed.last_error == "PACS unreachable"
    assert store.jobs.get(bad.id) == failed


def test_save_exam_score_twice_updates_one_score(store: Store) -> None:
    first = save(store, "1.2.3", 3, timedelta(hours=1))
    second = save(store, "1.2.3", 8, timedelta(hours=1))
    assert first == second
    assert count(store, ScoreRow) == 1
    assert count(store, ImageRow) == 4
    assert count(store, FindingRow) == 1
    with store.db.engine.connect() as conn:
        assert conn.execute(select(ScoreRow.category)).scalar_one() == 8


def test_another_model_adds_a_second_score(store: Store) -> None:
    save(store, "1.2.3", 3, timedelta(hours=1), sha=SHA_A)
    save(store, "1.2.3", 4, timedelta(hours=1), sha=SHA_B)
    assert count(store, ScoreRow) == 2
    assert count(store, ImageRow) == 4


def test_worklist_order_follows_priority_category_and_wait(store: Store) -> None:
    ids = {
        "routine-3-old": save(store, "1.1", 3, timedelta(days=2)),
        "routine-3-new": save(store, "1.2", 3, timedelta(hours=1)),
        "routine-7": save(store, "1.3", 7, timedelta(hours=1)),
        "priority-10": save(store, "1.4", 10, timedelta(minutes=5)),
        "overdue-1": save(store, "1.5", 1, timedelta(days=6)),
    }
    order = [entry.exam_public_id for entry in store.readings.worklist(NOW, POLICY)]
    expected = ["overdue-1", "priority-10", "routine-7", "routine-3-old", "routine-3-new"]
    assert order == [ids[name] for name in expected]


def test_worklist_returns_aware_received_at(store: Store) -> None:
    save(store, "1.1", 3, timedelta(hours=1))
    (entry,) = store.readings.worklist(NOW, POLICY)
    assert entry.received_at == NOW - timedelta(hours=1)
    assert entry.decision.policy_version == "test-1"


def test_audit_rows_are_written(store: Store) -> None:
    public_id = save(store, "1.1", 3, timedelta(hours=1))
    store.audit.record("reader-7", "open", public_id, {"view": "L-CC"})
    store.audit.record("worker-1", "score", None)
    assert count(store, AuditRow) == 2
    with store.db.engine.connect() as conn:
        row = conn.execute(select(AuditRow).where(AuditRow.actor == "reader-7")).one()
    assert row.exam_public_id == public_id
    assert row.detail == {"view": "L-CC"}


def _images_of(store: Store, study: str) -> list[tuple[str | None, str | None, str | None]]:
    from mammotriage.worklist.models import ExamRow

    with store.db.engine.connect() as conn:
        rows = conn.execute(
            select(ImageRow.sop_instance_uid, ImageRow.path, ImageRow.reason)
            .join(ExamRow, ExamRow.id == ImageRow.exam_id)
            .where(ExamRow.study_instance_uid == study)
            .order_by(ImageRow.id)
        ).all()
    return [tuple(row) for row in rows]


def _with_images(score: ExamScore, *images: ImageScore) -> ExamScore:
    from dataclasses import replace

    return replace(score, images=score.images + images)


def _extra(study: str, name: str, sop: str | None, reason: str) -> ImageScore:
    return ImageScore(
        path=Path(f"/data/{study}/{name}.dcm"),
        sop_instance_uid=sop,
        laterality=Laterality.LEFT,
        view=ViewPosition.CC,
        usable=False,
        reason=reason,
    )


def test_every_file_keeps_its_image_row_when_uids_are_shared_or_missing(store: Store) -> None:
    """Issue 11 item 8: files sharing a SOPInstanceUID (or with none) each keep a row."""
    score = _with_images(
        exam_score("1.2.3", 3),
        _extra("1.2.3", "copy-of-0", "1.2.3.0", "damaged copy"),
        _extra("1.2.3", "another-copy-of-0", "1.2.3.0", "another damaged copy"),
        _extra("1.2.3", "no-uid-a", None, "no header"),
        _extra("1.2.3", "no-uid-b", None, "no header either"),
    )
    triage = ExamForTriage("1.2.3", 25.0, 3, 30.0, False, NOW)
    for _ in range(2):  # saving again neither duplicates nor drops a row
        store.exams.save_score(score, decide(POLICY, triage), NOW)
        stored = _images_of(store, "1.2.3")
        assert len(stored) == 8
        assert {path for _, path, _ in stored} == {str(im.path) for im in score.images}
    # A later save with fewer files drops the rows of the files that are gone.
    store.exams.save_score(exam_score("1.2.3", 3), decide(POLICY, triage), NOW)
    assert len(_images_of(store, "1.2.3")) == 4


def test_the_same_sop_instance_uid_in_two_studies_stays_in_both(store: Store) -> None:
    """Issue 11 item 16: the second study must not silently take the first one's image."""
    save(store, "1.2.3", 3, timedelta(hours=1))
    clash = exam_score("1.2.4", 4)
    clash = _with_images(clash, _extra("1.2.4", "borrowed", "1.2.3.0", "from the other study"))
    triage = ExamForTriage("1.2.4", 35.0, 4, 30.0, False, NOW)
    store.exams.save_score(clash, decide(POLICY, triage), NOW)
    first = _images_of(store, "1.2.3")
    second = _images_of(store, "1.2.4")
    assert len(first) == 4 and len(second) == 5
    assert "1.2.3.0" in {sop for sop, _, _ in first}
    assert "1.2.3.0" in {sop for sop, _, _ in second}


def test_thumbnails_are_recorded_per_exam_and_position(store: Store) -> None:
    first = save(store, "1.2.3", 3, timedelta(hours=1))
    clash = _with_images(
        exam_score("1.2.4", 4), _extra("1.2.4", "borrowed", "1.2.3.0", "from the other study")
    )
    triage = ExamForTriage("1.2.4", 35.0, 4, 30.0, False, NOW)
    store.exams.save_score(clash, decide(POLICY, triage), NOW)
    store.exams.save_thumbnails(first, {0: ("/t/0.png", 10, 20)})
    with store.db.engine.connect() as conn:
        made = (
            conn.execute(select(ImageRow.thumbnail).where(ImageRow.thumbnail.is_not(None)))
            .scalars()
            .all()
        )
    assert made == ["/t/0.png"]


def _migrator(db: Store):
    """``to(revision, downgrade=False)``: Alembic run on ``db`` to ``revision``."""
    from importlib.resources import files

    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("mammotriage.worklist") / "migrations"))
    config.set_main_option(
        "sqlalchemy.url", db.db.url.render_as_string(hide_password=False).replace("%", "%%")
    )

    def to(revision: str, downgrade: bool = False) -> None:
        with db.db.engine.begin() as connection:
            config.attributes["connection"] = connection
            (command.downgrade if downgrade else command.upgrade)(config, revision)

    return to


def test_migration_0004_keeps_existing_images_and_numbers_them_per_exam(store_url: str) -> None:
    """Images stored under the 0003 schema (unique SOPInstanceUID) get their position in
    their exam; 0004 then takes files sharing a UID; downgrading keeps one row per UID."""
    from sqlalchemy import text

    db = Store(store_url)
    to = _migrator(db)

    to("0003")
    with db.db.engine.begin() as conn:
        for exam_id, study in ((1, "1.2.3"), (2, "1.2.4")):
            conn.execute(
                text(
                    "INSERT INTO exams (id, public_id, study_instance_uid, received_at,"
                    " partial, status) VALUES (:id, :public_id, :study, :at, false, 'SCORED')"
                ),
                {"id": exam_id, "public_id": uuid.uuid4().hex, "study": study, "at": NOW},
            )
        for sop, exam_id in (("1.2.3.0", 1), ("1.2.3.1", 1), ("1.2.4.0", 2)):
            conn.execute(
                text(
                    "INSERT INTO images (exam_id, sop_instance_uid, laterality, view, usable)"
                    " VALUES (:exam_id, :sop, 'L', 'CC', true)"
                ),
                {"exam_id": exam_id, "sop": sop},
            )
    to("head")
    with db.db.engine.begin() as conn:
        rows = conn.execute(
            select(ImageRow.exam_id, ImageRow.position, ImageRow.sop_instance_uid).order_by(
                ImageRow.id
            )
        ).all()
        assert [tuple(r) for r in rows] == [(1, 0, "1.2.3.0"), (1, 1, "1.2.3.1"), (2, 0, "1.2.4.0")]
        conn.execute(  # a second file with a UID already stored: allowed now
            text(
                "INSERT INTO images (exam_id, position, sop_instance_uid, laterality, view,"
                " usable) VALUES (2, 1, '1.2.3.0', 'L', 'CC', false)"
            )
        )
    to("0003", downgrade=True)
    with db.db.engine.connect() as conn:
        sops = conn.execute(text("SELECT sop_instance_uid FROM images ORDER BY id")).scalars()
        assert list(sops) == ["1.2.3.0", "1.2.3.1", "1.2.4.0"]
    db.close()


def test_migration_0012_gives_old_exams_a_monitoring_day_and_image_counts(store_url: str) -> None:
    """Rows written before 0012 get exam_date by the rule new rows follow (StudyDate, else
    the day received) and their image counts from their image rows."""
    from sqlalchemy import text

    db = Store(store_url)
    to = _migrator(db)

    to("0011")
    received = datetime(2026, 3, 4, 23, 30, tzinfo=timezone.utc)
    with db.db.engine.begin() as conn:
        for exam_id, study_date in ((1, "2026-02-27"), (2, None)):
            conn.execute(
                text(
                    "INSERT INTO exams (id, public_id, study_instance_uid, received_at, partial,"
                    " status, study_date) VALUES (:id, :public_id, :study, :at, false, 'scored',"
                    " :study_date)"
                ),
                {
                    "id": exam_id,
                    "public_id": uuid.uuid4().hex,
                    "study": f"1.2.{exam_id}",
                    "at": received if "sqlite" not in store_url else "2026-03-04 23:30:00",
                    "study_date": study_date,
                },
            )
        for position, usable in enumerate((True, False, True)):
            conn.execute(
                text(
                    "INSERT INTO images (exam_id, position, laterality, view, usable)"
                    " VALUES (1, :position, 'L', 'CC', :usable)"
                ),
                {"position": position, "usable": usable},
            )
    to("head")
    with db.db.engine.connect() as conn:
        rows = conn.execute(
            select(
                ExamRow.id, ExamRow.exam_date, ExamRow.image_count, ExamRow.unusable_images
            ).order_by(ExamRow.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        (1, date(2026, 2, 27), 3, 1),
        (2, date(2026, 3, 4), 0, 0),
    ]
    db.close()
