"""``mammotriage outcomes import`` and ``mammotriage monitor`` on a SQLite store: bad files
are refused with file:line and store nothing, a re-import changes nothing, rows without an
exam are named by line only, and the monitor prints its summary."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from api_site import exam_score
from mammotriage.cli.main import app
from mammotriage.triage import ExamForTriage, TriagePolicy, decide
from mammotriage.worklist import Store
from mammotriage.worklist.exams import AcquisitionSite, StudyIdentifiers
from mammotriage.worklist.models import OutcomeRow

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
POLICY = TriagePolicy(version="test-1")


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "worklist.sqlite"
    store = Store(str(path))
    store.migrate()
    for n, category in enumerate([2, 7, 10], start=1):
        score = exam_score(f"1.2.{n}", category)
        exam = ExamForTriage(f"1.2.{n}", float(score.score or 0), category, None, False, NOW)
        store.exams.save_score(
            score,
            decide(POLICY, exam),
            NOW,
            identifiers=StudyIdentifiers(accession_number=f"ACC{n}", study_date=date(2026, 11, 20)),
            acquisition=AcquisitionSite("Site A", "ACME", "M1", "ROOM-1"),
        )
    store.close()
    return path


def _run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _rows(database: Path) -> list[tuple]:
    store = Store(str(database))
    try:
        with store.db.session() as session:
            return [
                (r.exam_id, r.screen_detected_cancer, r.interval_cancer, r.recall, r.imported_at)
                for r in session.execute(select(OutcomeRow).order_by(OutcomeRow.exam_id)).scalars()
            ]
    finally:
        store.close()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_import_then_reimport_changes_nothing(database: Path, tmp_path: Path) -> None:
    csv = _write(
        tmp_path / "outcomes.csv",
        "exam_id,screen_detected_cancer,interval_cancer,recall\n"
        "1.2.1,0,0,0\n1.2.2,0,0,1\n1.2.3,1,0,1\n",
    )
    first = _run("outcomes", "import", str(csv), "--database", str(database))
    assert first.exit_code == 0, first.output
    assert "3 rows: 3 added, 0 changed, 0 unchanged" in first.output
    stored = _rows(database)
    assert [r[:4] for r in stored] == [
        (1, False, False, False),
        (2, False, False, True),
        (3, True, False, True),
    ]
    again = _run("outcomes", "import", str(csv), "--database", str(database))
    assert "0 added, 0 changed, 3 unchanged" in again.output
    assert _rows(database) == stored


def test_a_corrected_file_replaces_the_changed_rows_only(database: Path, tmp_path: Path) -> None:
    header = "accession_number,screen_detected_cancer,interval_cancer\n"
    _run("outcomes", "import", str(_write(tmp_path / "a.csv", header + "ACC1,0,0\nACC2,0,0\n")),
         "--database", str(database))  # fmt: skip
    before = _rows(database)
    result = _run(
        "outcomes", "import", str(_write(tmp_path / "b.csv", header + "ACC1,0,0\nACC2,0,1\n")),
        "--database", str(database),
    )  # fmt: skip
    assert "1 changed, 1 unchanged" in result.output
    after = _rows(database)
    assert after[0] == before[0]
    assert after[1][:4] == (2, False, True, None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("1.2.1,0,0\n1.2.2,2,0\n", ":3: screen_detected_cancer must be 0 or 1"),
        ("1.2.1,0,\n", ":2: interval_cancer is empty"),
        ("1.2.1,0,0\n1.2.1,1,0\n", "appear more than once"),
        ("1.2.1,0\n", ":2: expected 3 cells"),
    ],
)
def test_a_bad_row_stops_the_import_with_its_line_and_stores_nothing(
    database: Path, tmp_path: Path, body: str, message: str
) -> None:
    csv = _write(tmp_path / "bad.csv", "exam_id,screen_detected_cancer,interval_cancer\n" + body)
    result = _run("outcomes", "import", str(csv), "--database", str(database))
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert _rows(database) == []


def test_rows_without_an_exam_are_named_by_line_never_by_key(
    database: Path, tmp_path: Path
) -> None:
    csv = _write(
        tmp_path / "o.csv",
        "accession_number,screen_detected_cancer,interval_cancer\nACC1,0,0\nSECRET-ACC,1,0\n",
    )
    result = _run("outcomes", "import", str(csv), "--database", str(database))
    assert result.exit_code == 0
    assert "1 added" in result.output and "1 without an exam" in result.output
    assert "lines 3" in result.output
    assert "SECRET-ACC" not in result.output


def test_monitor_prints_the_summary_and_json(database: Path, tmp_path: Path) -> None:
    csv = _write(tmp_path / "o.csv", "exam_id,screen_detected_cancer,interval_cancer\n1.2.3,1,0\n")
    _run("outcomes", "import", str(csv), "--database", str(database))
    text = _run("monitor", "--database", str(database), "--since", "2026-11-01", "--until",
                "2026-11-30")  # fmt: skip
    assert text.exit_code == 0, text.output
    assert "ACME / M1 / ROOM-1" in text.output and "Site A" in text.output
    assert "no exam read yet" in text.output
    assert "10 (double reading, read first)" in text.output
    payload = json.loads(
        _run("monitor", "--database", str(database), "--since", "2026-11-01", "--json").stdout
    )
    (week,) = payload["devices"]
    assert week["exams"] == 3 and week["week"] == "2026-11-16"
    # The packaged model did not score these exams (the test model did): no category shares.
    assert week["scored"] == 0 and week["other_model"] == 3
    bands = {o["band"]: o for o in payload["outcomes"]}
    assert bands["all"]["screen_detected"] == 1


def test_monitor_refuses_a_missing_store_and_a_reversed_window(tmp_path: Path) -> None:
    missing = _run("monitor", "--database", str(tmp_path / "none.sqlite"))
    assert missing.exit_code == 2 and "no worklist database" in missing.output
    reversed_ = _run("monitor", "--database", str(tmp_path / "x.sqlite"), "--since",
                     "2026-11-10", "--until", "2026-11-01")  # fmt: skip
    assert reversed_.exit_code == 2 and "before" in reversed_.output
