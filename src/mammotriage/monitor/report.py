"""The monitoring report: computed from the store in a few grouped queries and numpy.

Exams count in the week (Monday to Sunday) of their ``exam_date`` (StudyDate, else the day
they were received), per site (InstitutionName) and device (Manufacturer /
ManufacturerModelName / StationName). Rejected studies (no mammogram in them) are left out.

- **Drift**: a device's week of exams scored by the monitored model, spread over categories
  1-10, against the model's calibration reference: its cut points are the reference
  population's deciles, so each category held a tenth of it. The population stability
  index (:func:`mammotriage.stability.psi`) and Pearson's chi-square test say how far, and
  whether more than chance. An uncalibrated model has no reference: no PSI.
- **Quality**: the share of images that could not be scored (by reason: the reason's text
  up to its first colon) and of partial exams; the median exam score.
- **Readers**, from the decisions of read exams: recall rate per band (the final decision:
  consensus where there was one), how often the two first readers of a double-read exam
  disagreed, single-read exams recalled and of those, recalled in consensus.
- **Outcomes** (``outcomes import``): per band, cancer detection rate (screen-detected per
  1000 exams with an outcome), PPV of recall (screen-detected among the recalled; recall as
  the readers decided, else the outcome file's) and interval cancers among single-read
  exams.

The queries group in the database (counts per device and day) or fetch two numbers per exam
(day and score, for the median); everything else is vectorised.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import case, func, select

from mammotriage.category import CATEGORIES
from mammotriage.monitor.bands import Band, policy_bands
from mammotriage.monitor.settings import AlertRule
from mammotriage.sidecar import Sidecar
from mammotriage.stability import chi_square, psi
from mammotriage.triage import TriagePolicy
from mammotriage.triage.policy import ReadingMode
from mammotriage.worklist.database import Database
from mammotriage.worklist.models import (
    AssignmentRow,
    DecisionRow,
    ExamRow,
    ExamStatus,
    ImageRow,
    OutcomeRow,
    ReadingStatus,
    ScoreRow,
)

UNKNOWN_SITE = "unknown site"
UNKNOWN_DEVICE = "unknown device"
_TENTH = 1 / len(CATEGORIES)


@dataclass(frozen=True)
class Reference:
    """What a device's category shares are compared with."""

    model_name: str
    model_sha256: str
    #: Share per category 1-10; None when the model is not calibrated.
    shares: tuple[float, ...] | None
    description: str

    @classmethod
    def of(cls, sidecar: Sidecar) -> Reference:
        calibration = sidecar.calibration
        if calibration.exams <= 0:
            return cls(sidecar.name, sidecar.sha256, None, f"none: {calibration.reference}")
        return cls(
            sidecar.name,
            sidecar.sha256,
            tuple(_TENTH for _ in CATEGORIES),
            f"{calibration.reference} (deciles: a tenth in each category)",
        )


@dataclass(frozen=True)
class DeviceWeek:
    """One device's exams of one week."""

    site: str
    device: str
    week: date
    exams: int
    partial: int
    #: Exams with a category from the monitored model, per category 1-10.
    counts: tuple[int, ...]
    #: Exams scored by another model (not in ``counts``) and exams without a score.
    other_model: int
    unscored: int
    images: int
    unusable_images: int
    unusable_by_reason: dict[str, int]
    median_score: float | None
    psi: float | None
    chi_square: float | None
    p_value: float | None

    @property
    def scored(self) -> int:
        return sum(self.counts)

    @property
    def shares(self) -> tuple[float, ...] | None:
        n = self.scored
        return tuple(c / n for c in self.counts) if n else None

    @property
    def unusable_share(self) -> float | None:
        return self.unusable_images / self.images if self.images else None

    @property
    def partial_share(self) -> float | None:
        return self.partial / self.exams if self.exams else None


@dataclass(frozen=True)
class ReaderFigures:
    """Reader behaviour of one band (or all) at one site, over one week or the window."""

    site: str
    band: str
    week: date | None
    read: int
    recalled: int
    double_read: int
    disagreed: int
    single_read: int
    single_recalled: int
    single_recalled_in_consensus: int

    @property
    def recall_rate(self) -> float | None:
        return self.recalled / self.read if self.read else None

    @property
    def disagreement_rate(self) -> float | None:
        return self.disagreed / self.double_read if self.double_read else None


@dataclass(frozen=True)
class OutcomeFigures:
    """Outcomes of one band (or all) over the window."""

    band: str
    exams: int
    screen_detected: int
    recalled: int
    recalled_with_cancer: int
    interval: int
    single_read: int
    single_read_interval: int

    @property
    def detection_per_1000(self) -> float | None:
        return 1000 * self.screen_detected / self.exams if self.exams else None

    @property
    def ppv_of_recall(self) -> float | None:
        return self.recalled_with_cancer / self.recalled if self.recalled else None

    @property
    def single_read_interval_per_1000(self) -> float | None:
        return 1000 * self.single_read_interval / self.single_read if self.single_read else None


@dataclass(frozen=True)
class Alert:
    rule: str
    site: str
    device: str
    week: date
    value: float
    threshold: float
    message: str


@dataclass(frozen=True)
class MonitorReport:
    generated_at: datetime
    since: date
    until: date
    reference: Reference
    bands: tuple[Band, ...]
    device_weeks: tuple[DeviceWeek, ...]
    readers: tuple[ReaderFigures, ...]
    reader_weeks: tuple[ReaderFigures, ...]
    outcomes: tuple[OutcomeFigures, ...]
    alerts: tuple[Alert, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def devices(self) -> list[tuple[str, str]]:
        return sorted({(w.site, w.device) for w in self.device_weeks})

    def weeks_of(self, site: str, device: str) -> list[DeviceWeek]:
        return [w for w in self.device_weeks if (w.site, w.device) == (site, device)]


def week_of(day: date) -> date:
    """The Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())


def device_name(manufacturer: str | None, model: str | None, station: str | None) -> str:
    """``Manufacturer / Model / Station`` of the parts known; "unknown device" if none."""
    parts = [p for p in (manufacturer, model, station) if p]
    return " / ".join(parts) if parts else UNKNOWN_DEVICE


def reason_kind(reason: str | None) -> str:
    """What an unusable image's reason says before its details (up to the first colon)."""
    text = (reason or "no reason recorded").split(":", 1)[0].strip()
    return text[:80] or "no reason recorded"


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if values.size else None


# -- the queries --------------------------------------------------------------------------

_DEVICE_COLUMNS = (ExamRow.site, ExamRow.manufacturer, ExamRow.device_model, ExamRow.station_name)


def _window(query: Any, since: date, until: date) -> Any:
    return query.where(
        ExamRow.exam_date >= since,
        ExamRow.exam_date <= until,
        ExamRow.status != ExamStatus.REJECTED,
    )


def _key(row: Sequence[Any]) -> tuple[str, str]:
    site, manufacturer, model, station = row
    return site or UNKNOWN_SITE, device_name(manufacturer, model, station)


class _Weeks:
    """Per (site, device, week) accumulators."""

    def __init__(self) -> None:
        self.exams: dict[tuple[str, str, date], int] = defaultdict(int)
        self.partial: dict[tuple[str, str, date], int] = defaultdict(int)
        self.counts: dict[tuple[str, str, date], np.ndarray] = defaultdict(
            lambda: np.zeros(len(CATEGORIES), dtype=np.int64)
        )
        self.other: dict[tuple[str, str, date], int] = defaultdict(int)
        self.unscored: dict[tuple[str, str, date], int] = defaultdict(int)
        self.images: dict[tuple[str, str, date], int] = defaultdict(int)
        self.unusable: dict[tuple[str, str, date], int] = defaultdict(int)
        self.reasons: dict[tuple[str, str, date], dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self.scores: dict[tuple[str, str, date], list[np.ndarray]] = defaultdict(list)


def _device_weeks(
    db: Database, since: date, until: date, reference: Reference
) -> tuple[list[DeviceWeek], list[str]]:
    acc = _Weeks()
    notes: list[str] = []
    is_model = ScoreRow.model_sha256 == reference.model_sha256
    exams = _window(
        select(
            *_DEVICE_COLUMNS,
            ExamRow.exam_date,
            ExamRow.partial,
            AssignmentRow.category,
            ScoreRow.model_sha256,
            func.count(),
        )
        .select_from(ExamRow)
        .outerjoin(AssignmentRow, AssignmentRow.exam_id == ExamRow.id)
        .outerjoin(ScoreRow, ScoreRow.id == AssignmentRow.score_id),
        since,
        until,
    ).group_by(
        *_DEVICE_COLUMNS,
        ExamRow.exam_date,
        ExamRow.partial,
        AssignmentRow.category,
        ScoreRow.model_sha256,
    )
    images = _window(
        select(
            *_DEVICE_COLUMNS,
            ExamRow.exam_date,
            func.count(),
            func.sum(case((ImageRow.usable.is_(False), 1), else_=0)),
        )
        .select_from(ImageRow)
        .join(ExamRow, ExamRow.id == ImageRow.exam_id),
        since,
        until,
    ).group_by(*_DEVICE_COLUMNS, ExamRow.exam_date)
    unusable = _window(
        select(*_DEVICE_COLUMNS, ExamRow.exam_date, ImageRow.reason, func.count())
        .select_from(ImageRow)
        .join(ExamRow, ExamRow.id == ImageRow.exam_id)
        .where(ImageRow.usable.is_(False)),
        since,
        until,
    ).group_by(*_DEVICE_COLUMNS, ExamRow.exam_date, ImageRow.reason)
    # Two numbers per exam, for the medians: the device is found again by its row's key.
    scores = _window(
        select(*_DEVICE_COLUMNS, ExamRow.exam_date, ScoreRow.score)
        .select_from(ExamRow)
        .join(AssignmentRow, AssignmentRow.exam_id == ExamRow.id)
        .join(ScoreRow, ScoreRow.id == AssignmentRow.score_id)
        .where(is_model, ScoreRow.score.is_not(None)),
        since,
        until,
    ).order_by(*_DEVICE_COLUMNS, ExamRow.exam_date)
    with db.session() as session:
        for *device, day, partial, category, model, n in session.execute(exams):
            key = _key(device) + (week_of(day),)
            acc.exams[key] += n
            acc.partial[key] += n if partial else 0
            if model is None or category is None:
                acc.unscored[key] += n
            elif model == reference.model_sha256:
                acc.counts[key][int(category) - 1] += n
            else:
                acc.other[key] += n
        for *device, day, n, bad in session.execute(images):
            key = _key(device) + (week_of(day),)
            acc.images[key] += n
            acc.unusable[key] += int(bad or 0)
        for *device, day, reason, n in session.execute(unusable):
            acc.reasons[_key(device) + (week_of(day),)][reason_kind(reason)] += n
        _collect_scores(session.execute(scores), acc)
    out = []
    for key in sorted(acc.exams):
        site_name, device_label, week_start = key
        counts = acc.counts[key]
        value = statistic = p_value = None
        if reference.shares is not None and counts.sum() > 0:
            shares_ref = np.asarray(reference.shares)
            value = float(psi(counts / counts.sum(), shares_ref))
            statistic, _, p_value = chi_square(counts, shares_ref)
        chunks = acc.scores.get(key)
        median = _median(np.concatenate(chunks)) if chunks else None
        out.append(
            DeviceWeek(
                site=site_name,
                device=device_label,
                week=week_start,
                exams=acc.exams[key],
                partial=acc.partial[key],
                counts=tuple(int(c) for c in counts),
                other_model=acc.other[key],
                unscored=acc.unscored[key],
                images=acc.images[key],
                unusable_images=acc.unusable[key],
                unusable_by_reason=dict(acc.reasons.get(key, {})),
                median_score=median,
                psi=value,
                chi_square=statistic,
                p_value=p_value,
            )
        )
    others = sum(acc.other.values())
    if others:
        notes.append(
            f"{others} exams were scored by another model than {reference.model_name} "
            "and are left out of the category shares"
        )
    return out, notes


def _collect_scores(rows: Any, acc: _Weeks) -> None:
    """Group the (device..., day, score) rows, ordered by device and day, into weeks."""
    current: tuple[Any, ...] | None = None
    days: list[date] = []
    values: list[float] = []

    def flush() -> None:
        if current is None:
            return
        site, device = _key(current)
        week_starts = np.array([week_of(d) for d in days], dtype="datetime64[D]")
        scores = np.asarray(values, dtype=np.float64)
        for start in np.unique(week_starts):
            acc.scores[(site, device, start.astype(date))].append(scores[week_starts == start])

    for site, manufacturer, model, station, day, score in rows:
        device = (site, manufacturer, model, station)
        if device != current:
            flush()
            current, days, values = device, [], []
        days.append(day)
        values.append(score)
    flush()


def _reader_rows(db: Database, since: date, until: date) -> tuple[np.ndarray, ...] | None:
    """Per read exam: site index, week (days), category, mode, final recall, first-read
    disagreement, consensus recall; and the site names. None when nothing was read."""
    query = (
        select(
            AssignmentRow.id,
            ExamRow.site,
            ExamRow.exam_date,
            AssignmentRow.category,
            AssignmentRow.mode,
            DecisionRow.recall,
            DecisionRow.consensus,
        )
        .select_from(AssignmentRow)
        .join(ExamRow, ExamRow.id == AssignmentRow.exam_id)
        .join(DecisionRow, DecisionRow.assignment_id == AssignmentRow.id)
        .where(
            AssignmentRow.status == ReadingStatus.READ,
            AssignmentRow.category.is_not(None),
            ExamRow.exam_date >= since,
            ExamRow.exam_date <= until,
        )
        .order_by(AssignmentRow.id)
    )
    with db.session() as session:
        rows = session.execute(query).all()
    if not rows:
        return None
    ids, sites, days, categories, modes, recalls, consensus = zip(*rows, strict=True)
    assignment = np.asarray(ids, dtype=np.int64)
    recall = np.asarray(recalls, dtype=bool)
    in_consensus = np.asarray(consensus, dtype=bool)
    starts = np.flatnonzero(np.r_[True, assignment[1:] != assignment[:-1]])
    first = ~in_consensus
    # Per exam: first readers' recall any / all, consensus decisions and their recall.
    first_n = np.add.reduceat(first.astype(np.int64), starts)
    first_any = np.add.reduceat((first & recall).astype(np.int64), starts) > 0
    first_all = np.add.reduceat((first & recall).astype(np.int64), starts) == first_n
    cons_n = np.add.reduceat(in_consensus.astype(np.int64), starts)
    cons_any = np.add.reduceat((in_consensus & recall).astype(np.int64), starts) > 0
    final = np.where(cons_n > 0, cons_any, first_any)
    disagreed = (first_n >= 2) & first_any & ~first_all
    site_names = [s or UNKNOWN_SITE for s in sites]
    names, site_index = np.unique(np.asarray(site_names, dtype=object)[starts], return_inverse=True)
    week = np.array([week_of(days[i]) for i in starts], dtype="datetime64[D]")
    category = np.asarray([categories[i] for i in starts], dtype=np.int64)
    mode = np.asarray([ReadingMode(modes[i]).value for i in starts], dtype=object)
    return (
        assignment[starts],
        site_index,
        week,
        category,
        mode,
        final,
        first_n,
        disagreed,
        cons_n > 0,
        np.asarray(names, dtype=object),
    )


def _reader_figures(
    arrays: tuple[np.ndarray, ...] | None, bands: Sequence[Band], *, weekly: bool = False
) -> tuple[list[ReaderFigures], list[ReaderFigures]]:
    """Figures per site and band over the window, and (``weekly``) per site, week and
    band, the weekly ones labelled ``first-last``."""
    if arrays is None:
        return [], []
    _, site_index, week, category, mode, final, first_n, disagreed, consensus, names = arrays
    double = (mode == ReadingMode.DOUBLE.value) & (first_n >= 2)
    single = mode == ReadingMode.SINGLE.value
    spans = [(b.label, b.first, b.last) for b in bands] + [("all", 1, 10)]

    def figures(mask: np.ndarray, site: str, band: str, when: date | None) -> ReaderFigures:
        return ReaderFigures(
            site=site,
            band=band,
            week=when,
            read=int(mask.sum()),
            recalled=int((mask & final).sum()),
            double_read=int((mask & double).sum()),
            disagreed=int((mask & double & disagreed).sum()),
            single_read=int((mask & single).sum()),
            single_recalled=int((mask & single & final).sum()),
            single_recalled_in_consensus=int((mask & single & final & consensus).sum()),
        )

    window: list[ReaderFigures] = []
    by_week: list[ReaderFigures] = []
    weeks = np.unique(week) if weekly else np.array([], dtype="datetime64[D]")
    for s, site in enumerate(names):
        at_site = site_index == s
        for label, first, last in spans:
            in_band = at_site & (category >= first) & (category <= last)
            window.append(figures(in_band, str(site), label, None))
        for start in weeks:
            this_week = at_site & (week == start)
            if this_week.any():
                for band in bands:
                    in_band = this_week & (category >= band.first) & (category <= band.last)
                    by_week.append(
                        figures(in_band, str(site), f"{band.first}-{band.last}", start.astype(date))
                    )
    return window, by_week


def _outcome_figures(
    db: Database,
    since: date,
    until: date,
    bands: Sequence[Band],
    readers: tuple[np.ndarray, ...] | None,
) -> list[OutcomeFigures]:
    query = (
        select(
            AssignmentRow.id,
            AssignmentRow.category,
            AssignmentRow.mode,
            OutcomeRow.screen_detected_cancer,
            OutcomeRow.interval_cancer,
            OutcomeRow.recall,
        )
        .select_from(OutcomeRow)
        .join(ExamRow, ExamRow.id == OutcomeRow.exam_id)
        .join(AssignmentRow, AssignmentRow.exam_id == ExamRow.id)
        .where(
            AssignmentRow.category.is_not(None),
            ExamRow.exam_date >= since,
            ExamRow.exam_date <= until,
        )
    )
    with db.session() as session:
        rows = session.execute(query).all()
    if not rows:
        return []
    ids, categories, modes, screens, intervals, file_recalls = zip(*rows, strict=True)
    assignment = np.asarray(ids, dtype=np.int64)
    category = np.asarray(categories, dtype=np.int64)
    single = np.asarray([ReadingMode(m) is ReadingMode.SINGLE for m in modes])
    screen = np.asarray(screens, dtype=bool)
    interval = np.asarray(intervals, dtype=bool)
    # Recall: as the readers decided where the exam was read here, else the file's.
    known = np.asarray([r is not None for r in file_recalls])
    recall = np.asarray([bool(r) for r in file_recalls])
    if readers is not None:
        read_ids, final = readers[0], readers[5]
        at = np.searchsorted(read_ids, assignment)
        found = (at < read_ids.size) & (read_ids[np.minimum(at, read_ids.size - 1)] == assignment)
        recall = np.where(found, final[np.minimum(at, read_ids.size - 1)], recall)
        known = known | found
    out = []
    for label, first, last in [(b.label, b.first, b.last) for b in bands] + [("all", 1, 10)]:
        mask = (category >= first) & (category <= last)
        recalled = mask & known & recall
        out.append(
            OutcomeFigures(
                band=label,
                exams=int(mask.sum()),
                screen_detected=int((mask & screen).sum()),
                recalled=int(recalled.sum()),
                recalled_with_cancer=int((recalled & screen).sum()),
                interval=int((mask & interval).sum()),
                single_read=int((mask & single).sum()),
                single_read_interval=int((mask & single & interval).sum()),
            )
        )
    return out


# -- alerts -------------------------------------------------------------------------------


def _exceeds_device(rule: AlertRule, week: DeviceWeek) -> float | None:
    """The week's value when it breaks ``rule``, else None."""
    if rule.metric == "psi":
        if week.scored < rule.min_exams or week.psi is None or week.psi <= rule.above:
            return None
        if rule.significance is not None and not (
            week.p_value is not None and week.p_value < rule.significance
        ):
            return None
        return week.psi
    if week.exams < rule.min_exams:
        return None
    value = week.unusable_share if rule.metric == "unusable_share" else week.partial_share
    return value if value is not None and value > rule.above else None


def _exceeds_site(rule: AlertRule, figures: ReaderFigures) -> float | None:
    if figures.read < rule.min_exams:
        return None
    rate = figures.recall_rate
    return rate if rate is not None and rate > rule.above else None


def _fired(
    rule: AlertRule, series: dict[tuple[str, str], dict[date, float]]
) -> list[tuple[str, str, date, float]]:
    """Where ``rule`` fires: each week that ends ``rule.weeks`` consecutive breaking weeks."""
    fired = []
    for (site, device), by_week in series.items():
        for week, value in sorted(by_week.items()):
            run = [week - timedelta(weeks=k) for k in range(rule.weeks)]
            if all(w in by_week for w in run):
                fired.append((site, device, week, value))
    return fired


def _describe(rule: AlertRule, value: float) -> str:
    if rule.metric == "psi":
        what = f"category PSI {value:.2f} > {rule.above:g}"
    elif rule.metric == "recall_rate":
        first, last = rule.categories or (1, 10)
        what = f"recall rate in categories {first}-{last} {value:.1%} > {rule.above:.1%}"
    else:
        noun = "unusable images" if rule.metric == "unusable_share" else "partial exams"
        what = f"{noun} {value:.1%} > {rule.above:.1%}"
    weeks = f" for {rule.weeks} weeks" if rule.weeks > 1 else ""
    return f"{rule.name}: {what}{weeks}"


def evaluate_rules(
    rules: Sequence[AlertRule],
    device_weeks: Sequence[DeviceWeek],
    reader_weeks: Sequence[ReaderFigures],
) -> list[Alert]:
    """Every (rule, site, device, week) where a rule fires, oldest week first."""
    alerts = []
    for rule in rules:
        series: dict[tuple[str, str], dict[date, float]] = defaultdict(dict)
        if rule.scope == "device":
            for device_week in device_weeks:
                value = _exceeds_device(rule, device_week)
                if value is not None:
                    series[(device_week.site, device_week.device)][device_week.week] = value
        else:
            first, last = rule.categories or (1, 10)
            for figures in reader_weeks:
                if figures.band != f"{first}-{last}" or figures.week is None:
                    continue
                value = _exceeds_site(rule, figures)
                if value is not None:
                    series[(figures.site, "")][figures.week] = value
        for site, device, week, value in _fired(rule, series):
            where = f"{site}, {device}" if device else site
            alerts.append(
                Alert(
                    rule=rule.name,
                    site=site,
                    device=device,
                    week=week,
                    value=value,
                    threshold=rule.above,
                    message=f"{_describe(rule, value)} ({where}, week of {week.isoformat()})",
                )
            )
    return sorted(alerts, key=lambda a: (a.week, a.rule, a.site, a.device))


def _reader_weeks_for_rules(
    arrays: tuple[np.ndarray, ...] | None, rules: Sequence[AlertRule]
) -> list[ReaderFigures]:
    """Weekly reader figures for the category spans the rules ask about."""
    spans = sorted({rule.categories for rule in rules if rule.categories is not None})
    if arrays is None or not spans:
        return []
    bands = [Band(first, last, "rule") for first, last in spans]
    _, weekly = _reader_figures(arrays, bands, weekly=True)
    return weekly


def build_report(
    db: Database,
    sidecar: Sidecar,
    policy: TriagePolicy,
    rules: Sequence[AlertRule],
    *,
    since: date,
    until: date,
    now: datetime,
) -> MonitorReport:
    """The monitoring report of ``db`` for exams dated ``since`` to ``until`` (inclusive)."""
    reference = Reference.of(sidecar)
    bands = policy_bands(policy)
    device_weeks, notes = _device_weeks(db, since, until, reference)
    arrays = _reader_rows(db, since, until)
    readers, reader_weeks = _reader_figures(arrays, bands)
    rule_weeks = _reader_weeks_for_rules(arrays, rules)
    outcomes = _outcome_figures(db, since, until, bands, arrays)
    if reference.shares is None:
        notes.append(
            f"{sidecar.name} is not calibrated: there is no reference to measure drift against"
        )
    alerts = evaluate_rules(rules, device_weeks, rule_weeks)
    return MonitorReport(
        generated_at=now,
        since=since,
        until=until,
        reference=reference,
        bands=bands,
        device_weeks=tuple(device_weeks),
        readers=tuple(readers),
        reader_weeks=tuple(rule_weeks),
        outcomes=tuple(outcomes),
        alerts=tuple(alerts),
        notes=tuple(notes),
    )


def finite(value: float | None) -> float | None:
    """``value``, or None where it is None or not finite (for JSON)."""
    return value if value is not None and math.isfinite(value) else None


__all__ = [
    "UNKNOWN_DEVICE",
    "UNKNOWN_SITE",
    "Alert",
    "DeviceWeek",
    "MonitorReport",
    "OutcomeFigures",
    "ReaderFigures",
    "Reference",
    "build_report",
    "device_name",
    "evaluate_rules",
    "finite",
    "reason_kind",
    "week_of",
]
