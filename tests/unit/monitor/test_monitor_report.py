"""The monitoring report on a small store whose figures are worked out by hand: category
shares, PSI and chi-square per device and week, unusable and partial shares, medians, reader
behaviour, outcomes per band, and the alert rules. On SQLite and PostgreSQL."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import update

from mammotriage.dicom.model import Laterality, ViewPosition
from mammotriage.infer.scores import ExamScore, ImageScore
from mammotriage.monitor import AlertRule, MonitorSettings, build_report
from mammotriage.monitor.bands import policy_bands
from mammotriage.monitor.report import Reference, evaluate_rules
from mammotriage.outcomes import OutcomeRecord, OutcomesFile
from mammotriage.sidecar import Calibration, Sidecar
from mammotriage.stability import chi2_sf, chi_square
from mammotriage.triage import ExamForTriage, TriagePolicy, decide
from mammotriage.worklist import Store
from mammotriage.worklist.exams import AcquisitionSite, StudyIdentifiers
from mammotriage.worklist.models import AssignmentRow, DecisionRow, ExamRow, ReadingStatus

SHA = "a" * 64
OTHER_SHA = "b" * 64
POLICY = TriagePolicy(version="test-1")
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
#: Two Mondays.
WEEK_1 = date(2026, 11, 16)
WEEK_2 = date(2026, 11, 23)
SITE = "Hospital North"
DEVICE = AcquisitionSite(SITE, "ACME", "Senograph", "ROOM-1")
OTHER_DEVICE = AcquisitionSite(SITE, "OTHERCO", "Imager", "ROOM-2")
DEVICE_NAME = "ACME / Senograph / ROOM-1"


def sidecar(exams: int = 300) -> Sidecar:
    return Sidecar(
        name="test-model",
        onnx_file="test.onnx",
        sha256=SHA,
        created="2026-01-01",
        mammotriage_version="0",
        preprocess={},
        calibration=Calibration(reference="test reference", exams=exams),
    )


def exam_score(study: str, category: int, *, sha: str = SHA, unusable: int = 0) -> ExamScore:
    images = tuple(
        ImageScore(
            path=Path(f"/data/{study}/{i}.dcm"),
            sop_instance_uid=f"{study}.{i}",
            laterality=lat,
            view=view,
            usable=i >= unusable,
            reason=None if i >= unusable else "damaged DICOM header: ValueError: truncated",
            probability=None if i < unusable else category / 10 - 0.05,
        )
        for i, (lat, view) in enumerate(
            (lat, view)
            for lat in (Laterality.LEFT, Laterality.RIGHT)
            for view in (ViewPosition.CC, ViewPosition.MLO)
        )
    )
    return ExamScore(
        exam_id=study,
        score=category * 10 - 5,
        category=category,
        partial=unusable > 0,
        breasts={"L": category * 10 - 5, "R": 1.0},
        findings=(),
        images=images,
        model_name="test-model",
        model_sha256=sha,
    )


def save(
    store: Store,
    study: str,
    category: int,
    day: date,
    device: AcquisitionSite = DEVICE,
    **kwargs: object,
) -> None:
    score = exam_score(study, category, **kwargs)  # type: ignore[arg-type]
    exam = ExamForTriage(
        exam_id=study,
        score=float(score.score or 0),
        category=category,
        max_finding_score=None,
        partial=score.partial,
        received_at=NOW,
    )
    store.exams.save_score(
        score,
        decide(POLICY, exam),
        NOW,
        identifiers=StudyIdentifiers(study_date=day),
        acquisition=device,
    )


def report(store: Store, rules: tuple[AlertRule, ...] = (), exams: int = 300):
    return build_report(
        store.db,
        sidecar(exams),
        POLICY,
        rules,
        since=date(2026, 11, 1),
        until=date(2026, 11, 30),
        now=NOW,
    )


@pytest.fixture
def device_store(store: Store) -> Store:
    """Week 1: 20 exams of DEVICE spread 4, 4, 2, 2, 2, 2, 1, 1, 1, 1 over categories 1-10,
    one of them (category 1) with two unusable images (so partial); one exam of DEVICE scored
    by another model. Week 2: 10 exams of DEVICE, one per category; 10 of OTHER_DEVICE."""
    counts = [4, 4, 2, 2, 2, 2, 1, 1, 1, 1]
    n = 0
    for category, k in enumerate(counts, start=1):
        for _ in range(k):
            n += 1
            save(store, f"1.2.{n}", category, WEEK_1 + timedelta(days=n % 7), unusable=2 * (n == 1))
    save(store, "1.3.1", 5, WEEK_1, sha=OTHER_SHA)
    for category in range(1, 11):
        save(store, f"1.4.{category}", category, WEEK_2 + timedelta(days=category % 7))
        save(store, f"1.5.{category}", category, WEEK_2, device=OTHER_DEVICE)
    return store


def test_category_counts_psi_and_chi_square_per_device_and_week(device_store: Store) -> None:
    weeks = report(device_store).weeks_of(SITE, DEVICE_NAME)
    assert [w.week for w in weeks] == [WEEK_1, WEEK_2]
    first, second = weeks
    assert first.counts == (4, 4, 2, 2, 2, 2, 1, 1, 1, 1)
    # Worked by hand: two categories at 0.2 give 0.1 ln 2 each, four at 0.05 give
    # 0.05 ln 2 each, four at 0.1 nothing: 0.4 ln 2.
    assert first.psi == pytest.approx(0.4 * math.log(2), abs=1e-12)
    # Expected 2 per category: (2*4 + 4*0 + 4*1) / 2 = 6 on 9 degrees of freedom.
    assert first.chi_square == pytest.approx(6.0)
    assert first.p_value == pytest.approx(chi2_sf(6.0, 9))
    assert second.counts == (1,) * 10
    assert second.psi == pytest.approx(0.0, abs=1e-12)
    assert second.p_value == pytest.approx(1.0)


def test_exams_of_another_model_are_counted_apart_and_noted(device_store: Store) -> None:
    result = report(device_store)
    first = result.weeks_of(SITE, DEVICE_NAME)[0]
    assert (first.exams, first.scored, first.other_model) == (21, 20, 1)
    assert any("another model" in note for note in result.notes)


def test_unusable_images_partial_exams_and_median(device_store: Store) -> None:
    first, second = report(device_store).weeks_of(SITE, DEVICE_NAME)
    assert (first.images, first.unusable_images) == (84, 2)
    assert first.unusable_share == pytest.approx(2 / 84)
    assert first.unusable_by_reason == {"damaged DICOM header": 2}
    # Its first two files (L-CC and L-MLO) were the unusable ones: it lacks those views.
    assert first.partial_by_reason == {"no L-CC": 1, "no L-MLO": 1}
    assert second.partial_by_reason == {}
    assert first.partial_share == pytest.approx(1 / 21)
    # Scores are 10 * category - 5: the 20 exams' median lies between categories 3 and 4's.
    assert first.median_score == pytest.approx(30.0)
    assert second.median_score == pytest.approx(50.0)


def test_devices_are_kept_apart(device_store: Store) -> None:
    result = report(device_store)
    assert result.devices == [(SITE, DEVICE_NAME), (SITE, "OTHERCO / Imager / ROOM-2")]
    (other,) = result.weeks_of(SITE, "OTHERCO / Imager / ROOM-2")
    assert other.counts == (1,) * 10


def test_an_uncalibrated_model_has_no_reference_and_no_psi(device_store: Store) -> None:
    result = report(device_store, exams=0)
    assert result.reference.shares is None
    assert all(w.psi is None for w in result.device_weeks)
    assert any("not calibrated" in note for note in result.notes)


def test_the_window_bounds_the_exam_dates(device_store: Store) -> None:
    result = build_report(
        device_store.db, sidecar(), POLICY, (), since=WEEK_2, until=NOW.date(), now=NOW
    )
    assert {w.week for w in result.device_weeks} == {WEEK_2}


def test_psi_rule_needs_two_breaking_weeks_enough_exams_and_significance() -> None:
    reference = Reference("m", SHA, (0.1,) * 10, "")
    assert reference.shares is not None

    def week(start: date, counts: list[int]) -> object:
        from mammotriage.monitor.report import DeviceWeek
        from mammotriage.stability import psi

        total = sum(counts)
        statistic, _, p = chi_square(counts, reference.shares)  # type: ignore[arg-type]
        return DeviceWeek(
            SITE, DEVICE_NAME, start, total, 0, tuple(counts), 0, 0, 4 * total, 0, {}, None,
            float(psi([c / total for c in counts], 0.1)), statistic, p,
        )  # fmt: skip

    drifted = [0, 0, 0, 0, 0, 0, 0, 2, 8, 40]
    even = [5] * 10
    rule = AlertRule(
        name="category-drift", metric="psi", above=0.2, weeks=2, min_exams=50, significance=0.001
    )
    two = [week(WEEK_1, drifted), week(WEEK_2, drifted)]
    (alert,) = evaluate_rules([rule], two, [])  # type: ignore[arg-type]
    assert (alert.week, alert.device) == (WEEK_2, DEVICE_NAME)
    assert "category PSI" in alert.message and "2026-11-23" in alert.message
    # One breaking week is not two; weeks that are not consecutive are not either.
    assert evaluate_rules([rule], [week(WEEK_1, even), two[1]], []) == []  # type: ignore[arg-type]
    gap = [week(WEEK_1 - timedelta(weeks=1), drifted), two[1]]
    assert evaluate_rules([rule], gap, []) == []  # type: ignore[arg-type]
    # Too few exams in a week.
    small = [week(WEEK_1, [0] * 9 + [10]), week(WEEK_2, [0] * 9 + [10])]
    assert evaluate_rules([rule], small, []) == []  # type: ignore[arg-type]
    # A PSI above the limit that chance explains: without the significance it fires.
    noisy = [0, 9, 4, 5, 6, 7, 4, 5, 6, 4]
    loose = rule.model_copy(update={"significance": None})
    chance = [week(WEEK_1, noisy), week(WEEK_2, noisy)]
    assert chance[0].psi > 0.2 and chance[0].p_value > 0.001  # type: ignore[attr-defined]
    assert evaluate_rules([rule], chance, []) == []  # type: ignore[arg-type]
    assert len(evaluate_rules([loose], chance, [])) == 1  # type: ignore[arg-type]


def test_unusable_and_partial_rules_fire_per_device(device_store: Store) -> None:
    rules = (
        AlertRule(name="unusable", metric="unusable_share", above=0.02, min_exams=10),
        AlertRule(name="partial", metric="partial_share", above=0.05, min_exams=10),
    )
    alerts = report(device_store, rules).alerts
    # Week 1 of DEVICE: 2/84 = 2.4 % unusable > 2 %; 1/21 = 4.8 % partial, not > 5 %.
    assert [(a.rule, a.device, a.week) for a in alerts] == [("unusable", DEVICE_NAME, WEEK_1)]
    assert alerts[0].value == pytest.approx(2 / 84)


def _read(store: Store, study: str, *decisions: tuple[str, bool, bool]) -> None:
    """Record decisions (reader, recall, consensus) on the exam and mark it read."""
    with store.db.session() as session:
        exam_id = session.execute(
            ExamRow.__table__.select().where(ExamRow.study_instance_uid == study)
        ).one()[0]
        assignment = session.query(AssignmentRow).filter_by(exam_id=exam_id).one()
        session.execute(
            update(AssignmentRow)
            .where(AssignmentRow.id == assignment.id)
            .values(status=ReadingStatus.READ)
        )
        for reader, recall, consensus in decisions:
            session.add(
                DecisionRow(
                    assignment_id=assignment.id,
                    reader=reader,
                    recall=recall,
                    consensus=consensus,
                    decided_at=NOW,
                )
            )


@pytest.fixture
def read_store(store: Store) -> Store:
    """Categories 2, 3, 4, 5 single-read, the first recalled; category 7 read by two who
    disagreed and a consensus that recalled; category 8 read by two who did not recall;
    category 10 read by two who recalled; one exam of category 6 not read yet."""
    for n, category in enumerate([2, 3, 4, 5, 7, 8, 10, 6], start=1):
        save(store, f"2.{n}", category, WEEK_2)
    _read(store, "2.1", ("r1", True, False))
    for n in (2, 3, 4):
        _read(store, f"2.{n}", ("r1", False, False))
    _read(store, "2.5", ("r1", True, False), ("r2", False, False), ("r3", True, True))
    _read(store, "2.6", ("r1", False, False), ("r2", False, False))
    _read(store, "2.7", ("r1", True, False), ("r2", True, False))
    return store


def test_reader_recall_rate_and_disagreement_per_band(read_store: Store) -> None:
    figures = {f.band: f for f in report(read_store).readers}
    assert [b.label for b in policy_bands(POLICY)] == [
        "1-5 (single reading)",
        "6-9 (double reading)",
        "10 (double reading, read first)",
    ]
    single = figures["1-5 (single reading)"]
    assert (single.read, single.recalled, single.recall_rate) == (4, 1, 0.25)
    assert (single.single_read, single.single_recalled) == (4, 1)
    assert single.single_recalled_in_consensus == 0
    double = figures["6-9 (double reading)"]
    assert (double.read, double.recalled, double.double_read, double.disagreed) == (2, 1, 2, 1)
    assert double.disagreement_rate == 0.5
    first = figures["10 (double reading, read first)"]
    assert (first.read, first.recalled, first.disagreed) == (1, 1, 0)
    overall = figures["all"]
    assert (overall.read, overall.recalled) == (7, 3)


def test_recall_rule_fires_strictly_above_its_limit(read_store: Store) -> None:
    def rule(above: float) -> AlertRule:
        return AlertRule(
            name="recall-low", metric="recall_rate", categories=(1, 5), above=above, min_exams=4
        )

    (alert,) = report(read_store, (rule(0.2),)).alerts
    assert (alert.site, alert.device, alert.week, alert.value) == (SITE, "", WEEK_2, 0.25)
    assert report(read_store, (rule(0.25),)).alerts == ()
    too_few = rule(0.2).model_copy(update={"min_exams": 5})
    assert report(read_store, (too_few,)).alerts == ()


def test_outcomes_per_band(read_store: Store) -> None:
    records = (
        OutcomeRecord("2.7", True, False, True, 2),  # category 10, recalled: a cancer
        OutcomeRecord("2.5", False, False, True, 3),  # category 7, recalled: none
        OutcomeRecord("2.2", False, True, False, 4),  # category 3, single-read: interval
        OutcomeRecord("2.3", False, False, None, 5),
        OutcomeRecord("2.8", False, False, True, 6),  # category 6, unread: the file's recall
    )
    read_store.monitoring.import_outcomes(OutcomesFile(Path("o.csv"), "exam_id", records), "0")
    figures = {f.band: f for f in report(read_store).outcomes}
    top = figures["10 (double reading, read first)"]
    assert (top.exams, top.screen_detected, top.detection_per_1000) == (1, 1, 1000.0)
    assert (top.recalled, top.ppv_of_recall) == (1, 1.0)
    middle = figures["6-9 (double reading)"]
    assert (middle.exams, middle.recalled, middle.ppv_of_recall) == (2, 2, 0.0)
    low = figures["1-5 (single reading)"]
    assert (low.exams, low.interval, low.single_read, low.single_read_interval) == (2, 1, 2, 1)
    assert low.single_read_interval_per_1000 == 500.0
    assert (low.recalled, low.ppv_of_recall) == (0, None)
    assert figures["all"].exams == 5


def test_settings_refuse_rules_that_do_not_fit_their_metric() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="needs categories"):
        AlertRule(name="r", metric="recall_rate", above=0.1)
    with pytest.raises(ValidationError, match="significance applies to psi"):
        AlertRule(name="r", metric="unusable_share", above=0.1, significance=0.01)
    rule = AlertRule(name="a", metric="psi", above=0.2)
    with pytest.raises(ValidationError, match="unique"):
        MonitorSettings(alerts=(rule, rule))


def test_shipped_config_holds_the_default_rules() -> None:
    from mammotriage.monitor import DEFAULT_RULES, load_monitor_settings

    shipped = load_monitor_settings(Path(__file__).parents[3] / "configs" / "monitor.yaml")
    assert [r.model_dump(exclude={"description"}) for r in shipped.alerts] == [
        r.model_dump(exclude={"description"}) for r in DEFAULT_RULES
    ]
