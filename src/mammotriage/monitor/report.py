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

One query fetches a row per exam of the window (device, day, category, score and the
exam's image counts) and numpy groups them per device and week; the unusable images'
reasons, the decisions and the outcomes are grouped in the database. Everything else is
vectorised.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import String, and_, case, cast, func, select

from mammotriage.category import CATEGORIES
from mammotriage.dicom.model import STANDARD_VIEWS, Laterality, ViewPosition
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
    #: Partial exams by the standard view they lack ("no R-CC"; an exam lacking two views
    #: counts under both).
    partial_by_reason: dict[str, int] = field(default_factory=dict)

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

    def device_windows(self) -> list[DeviceWindow]:
        """Each device's weeks and their sums over the window, devices in order."""
        return [DeviceWindow(s, d, tuple(self.weeks_of(s, d))) for s, d in self.devices]


@dataclass(frozen=True)
class DeviceWindow:
    """One device's weeks of the window, oldest first, and their sums."""

    site: str
    device: str
    weeks: tuple[DeviceWeek, ...]

    @property
    def latest(self) -> DeviceWeek:
        return self.weeks[-1]

    @property
    def exams(self) -> int:
        return sum(w.exams for w in self.weeks)

    @property
    def images(self) -> int:
        return sum(w.images for w in self.weeks)

    @property
    def unusable_images(self) -> int:
        return sum(w.unusable_images for w in self.weeks)

    @property
    def partial(self) -> int:
        return sum(w.partial for w in self.weeks)

    @property
    def unusable_share(self) -> float | None:
        return self.unusable_images / self.images if self.images else None

    @property
    def partial_share(self) -> float | None:
        return self.partial / self.exams if self.exams else None

    @property
    def unusable_by_reason(self) -> list[tuple[str, int]]:
        """Unusable images by reason over the window, most first."""
        return _most_first(w.unusable_by_reason for w in self.weeks)

    @property
    def partial_by_reason(self) -> list[tuple[str, int]]:
        """Partial exams by the view they lack over the window, most first."""
        return _most_first(w.partial_by_reason for w in self.weeks)


def _most_first(counts: Iterable[dict[str, int]]) -> list[tuple[str, int]]:
    total: dict[str, int] = defaultdict(int)
    for by_reason in counts:
        for reason, n in by_reason.items():
            total[reason] += n
    return sorted(total.items(), key=lambda item: (-item[1], item[0]))


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


def _factorize(keys: list[tuple[Any, ...]]) -> tuple[np.ndarray, list[tuple[Any, ...]]]:
    """Each key's index among the distinct keys (in first-seen order), and those keys."""
    index: dict[tuple[Any, ...], int] = {}
    codes = np.fromiter((index.setdefault(k, len(index)) for k in keys), np.int64, len(keys))
    return codes, list(index)


def _days(values: Sequence[date]) -> np.ndarray:
    """Dates as days since 1970-01-01 (a Thursday)."""
    return np.asarray(values, dtype="datetime64[D]").astype(np.int64)


def _missing_views(rows: Sequence[Any]) -> dict[tuple[str, str, date], dict[str, int]]:
    """Per device and week, how many partial exams lack each standard view: the rows are
    (exam id, device..., day, laterality, view, usable) of partial exams' images."""
    seen: dict[int, tuple[tuple[str, str, date], set[tuple[str, str]]]] = {}
    for exam_id, *device, day, laterality, view, usable in rows:
        where, views = seen.setdefault(exam_id, (_key(device) + (week_of(day),), set()))
        if usable and laterality is not None and view is not None:
            views.add((Laterality(laterality).value, ViewPosition(view).value))
    out: dict[tuple[str, str, date], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for where, views in seen.values():
        for laterality, view in STANDARD_VIEWS:
            if (laterality.value, view.value) not in views:
                out[where][f"no {laterality.value}-{view.value}"] += 1
    return out


def _device_weeks(
    db: Database, since: date, until: date, reference: Reference
) -> tuple[list[DeviceWeek], list[str]]:
    """One row per exam of the window (its device, day, category, score and image counts),
    grouped by device and week in numpy; the unusable images' reasons grouped in SQL."""
    exams = _window(
        select(
            *_DEVICE_COLUMNS,
            # As text: numpy reads ISO dates in one call, faster than a date object per row.
            cast(ExamRow.exam_date, String),
            ExamRow.partial,
            ExamRow.image_count,
            ExamRow.unusable_images,
            AssignmentRow.category,
            ScoreRow.model_sha256,
            ScoreRow.score,
        )
        .select_from(ExamRow)
        .outerjoin(AssignmentRow, AssignmentRow.exam_id == ExamRow.id)
        .outerjoin(ScoreRow, ScoreRow.id == AssignmentRow.score_id),
        since,
        until,
    )
    unusable = _window(
        select(*_DEVICE_COLUMNS, ExamRow.exam_date, ImageRow.reason, func.count())
        .select_from(ImageRow)
        .join(ExamRow, ExamRow.id == ImageRow.exam_id)
        .where(ImageRow.usable.is_(False)),
        since,
        until,
    ).group_by(*_DEVICE_COLUMNS, ExamRow.exam_date, ImageRow.reason)
    # Few exams are partial: their image rows say which standard view each lacks.
    partial_views = _window(
        select(
            ExamRow.id,
            *_DEVICE_COLUMNS,
            ExamRow.exam_date,
            ImageRow.laterality,
            ImageRow.view,
            ImageRow.usable,
        )
        .select_from(ExamRow)
        .outerjoin(ImageRow, ImageRow.exam_id == ExamRow.id)
        .where(ExamRow.partial.is_(True)),
        since,
        until,
    )
    with db.engine.connect() as connection:
        rows = connection.execute(exams).all()
        reasons = connection.execute(unusable).all()
        partial_rows = connection.execute(partial_views).all()
    if not rows:
        return [], []
    columns = list(zip(*rows, strict=True))
    raw, raw_keys = _factorize([r[:4] for r in rows])
    # Distinct header values may name the same device (an empty value and a missing one).
    named, devices = _factorize([_key(k) for k in raw_keys])
    device = named[raw]
    # Monday of each exam's week, in days since the epoch (a Thursday: Monday is day 4).
    week = (_days(columns[4]) - 4) // 7 * 7 + 4
    group, starts = _factorize(list(zip(device.tolist(), week.tolist(), strict=True)))
    n = len(starts)
    partial = np.asarray(columns[5], dtype=bool)
    images = np.asarray([v or 0 for v in columns[6]], dtype=np.int64)
    bad = np.asarray([v or 0 for v in columns[7]], dtype=np.int64)
    category = np.asarray([0 if v is None else v for v in columns[8]], dtype=np.int64)
    model = columns[9]
    mine = np.fromiter((m == reference.model_sha256 for m in model), bool, len(rows))
    known = np.fromiter((m is not None for m in model), bool, len(rows)) & (category > 0)
    score = np.asarray([np.nan if v is None else v for v in columns[10]], dtype=np.float64)
    counted = known & mine
    counts = np.bincount(
        group[counted] * len(CATEGORIES) + category[counted] - 1,
        minlength=n * len(CATEGORIES),
    ).reshape(n, len(CATEGORIES))
    exams_n = np.bincount(group, minlength=n)
    partial_n = np.bincount(group, weights=partial, minlength=n).astype(np.int64)
    other_n = np.bincount(group, weights=known & ~mine, minlength=n).astype(np.int64)
    unscored_n = np.bincount(group, weights=~known, minlength=n).astype(np.int64)
    images_n = np.bincount(group, weights=images, minlength=n).astype(np.int64)
    bad_n = np.bincount(group, weights=bad, minlength=n).astype(np.int64)
    # Medians of the monitored model's scores: sorted by group, then score, and split.
    scored = counted & ~np.isnan(score)
    order = np.lexsort((score[scored], group[scored]))
    sorted_groups = group[scored][order]
    sorted_scores = score[scored][order]
    bounds = np.searchsorted(sorted_groups, np.arange(n + 1))
    by_reason: dict[tuple[str, str, date], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for *where, day, reason, count in reasons:
        by_reason[_key(where) + (week_of(day),)][reason_kind(reason)] += count
    lacking = _missing_views(partial_rows)
    shares_ref = None if reference.shares is None else np.asarray(reference.shares)
    out = []
    for g, (d, start) in enumerate(starts):
        site_name, device_label = devices[d]
        monday = date(1970, 1, 1) + timedelta(days=int(start))
        value = statistic = p_value = None
        if shares_ref is not None and counts[g].sum() > 0:
            value = float(psi(counts[g] / counts[g].sum(), shares_ref))
            statistic, _, p_value = chi_square(counts[g], shares_ref)
        segment = sorted_scores[bounds[g] : bounds[g + 1]]
        out.append(
            DeviceWeek(
                site=site_name,
                device=device_label,
                week=monday,
                exams=int(exams_n[g]),
                partial=int(partial_n[g]),
                counts=tuple(int(c) for c in counts[g]),
                other_model=int(other_n[g]),
                unscored=int(unscored_n[g]),
                images=int(images_n[g]),
                unusable_images=int(bad_n[g]),
                unusable_by_reason=dict(by_reason.get((site_name, device_label, monday), {})),
                median_score=_median(segment),
                psi=value,
                chi_square=statistic,
                p_value=p_value,
                partial_by_reason=dict(lacking.get((site_name, device_label, monday), {})),
            )
        )
    out.sort(key=lambda w: (w.site, w.device, w.week))
    notes = []
    others = int(other_n.sum())
    if others:
        notes.append(
            f"{others} exams were scored by another model than {reference.model_name} "
            "and are left out of the category shares"
        )
    return out, notes


def _per_exam_decisions(since: date, until: date) -> Any:
    """A subquery: per read exam of the window, its site, day, category and mode, and how
    many first-read and consensus decisions it has and how many of each recalled."""
    first = DecisionRow.consensus.is_(False)
    consensus = DecisionRow.consensus.is_(True)
    recall = DecisionRow.recall.is_(True)
    return (
        select(
            AssignmentRow.id.label("assignment_id"),
            ExamRow.site.label("site"),
            ExamRow.exam_date.label("exam_date"),
            AssignmentRow.category.label("category"),
            AssignmentRow.mode.label("mode"),
            func.sum(case((first, 1), else_=0)).label("first_n"),
            func.sum(case((and_(first, recall), 1), else_=0)).label("first_recalls"),
            func.sum(case((consensus, 1), else_=0)).label("consensus_n"),
            func.sum(case((and_(consensus, recall), 1), else_=0)).label("consensus_recalls"),
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
        .group_by(
            AssignmentRow.id,
            ExamRow.site,
            ExamRow.exam_date,
            AssignmentRow.category,
            AssignmentRow.mode,
        )
        .subquery()
    )


def _final_recall(
    first_n: np.ndarray,
    first_recalls: np.ndarray,
    consensus_n: np.ndarray,
    consensus_recalls: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Each exam's final recall (the consensus's where there was one, else the first
    readers') and whether its first readers disagreed."""
    final = np.where(consensus_n > 0, consensus_recalls > 0, first_recalls > 0)
    disagreed = (first_n >= 2) & (first_recalls > 0) & (first_recalls < first_n)
    return final, disagreed


def _reader_rows(db: Database, since: date, until: date) -> tuple[np.ndarray, ...] | None:
    """Read exams counted in the database by site, day, category, mode and decisions:
    per group its site index, week, category, mode, final recall, first-read count,
    first-read disagreement, consensus, and how many exams; and the site names. None when
    nothing was read."""
    per_exam = _per_exam_decisions(since, until)
    keys = (
        per_exam.c.site,
        per_exam.c.exam_date,
        per_exam.c.category,
        per_exam.c.mode,
        per_exam.c.first_n,
        per_exam.c.first_recalls,
        per_exam.c.consensus_n,
        per_exam.c.consensus_recalls,
    )
    query = select(*keys, func.count()).group_by(*keys)
    with db.engine.connect() as connection:
        rows = connection.execute(query).all()
    if not rows:
        return None
    sites, days, categories, modes, first_n, first_recalls, cons_n, cons_recalls, counts = zip(
        *rows, strict=True
    )
    first = np.asarray(first_n, dtype=np.int64)
    final, disagreed = _final_recall(
        first,
        np.asarray(first_recalls, dtype=np.int64),
        np.asarray(cons_n, dtype=np.int64),
        np.asarray(cons_recalls, dtype=np.int64),
    )
    names, site_index = np.unique(
        np.asarray([s or UNKNOWN_SITE for s in sites], dtype=object), return_inverse=True
    )
    week = np.array([week_of(d) for d in days], dtype="datetime64[D]")
    return (
        np.asarray(counts, dtype=np.int64),
        site_index,
        week,
        np.asarray(categories, dtype=np.int64),
        np.asarray([ReadingMode(m).value for m in modes], dtype=object),
        final,
        first,
        disagreed,
        np.asarray(cons_n, dtype=np.int64) > 0,
        np.asarray(names, dtype=object),
    )


def _reader_figures(
    arrays: tuple[np.ndarray, ...] | None, bands: Sequence[Band], *, weekly: bool = False
) -> tuple[list[ReaderFigures], list[ReaderFigures]]:
    """Figures per site and band over the window, and (``weekly``) per site, week and
    band, the weekly ones labelled ``first-last``."""
    if arrays is None:
        return [], []
    exams, site_index, week, category, mode, final, first_n, disagreed, consensus, names = arrays
    double = (mode == ReadingMode.DOUBLE.value) & (first_n >= 2)
    single = mode == ReadingMode.SINGLE.value
    spans = [(b.label, b.first, b.last) for b in bands] + [("all", 1, 10)]

    def figures(mask: np.ndarray, site: str, band: str, when: date | None) -> ReaderFigures:
        def n(where: np.ndarray) -> int:
            return int(exams[where].sum())

        return ReaderFigures(
            site=site,
            band=band,
            week=when,
            read=n(mask),
            recalled=n(mask & final),
            double_read=n(mask & double),
            disagreed=n(mask & double & disagreed),
            single_read=n(mask & single),
            single_recalled=n(mask & single & final),
            single_recalled_in_consensus=n(mask & single & final & consensus),
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
    db: Database, since: date, until: date, bands: Sequence[Band]
) -> list[OutcomeFigures]:
    """Outcomes counted in the database by category, mode, outcome and the readers'
    decisions (exams read here), then per band in numpy."""
    per_exam = _per_exam_decisions(since, until)
    keys = (
        AssignmentRow.category,
        AssignmentRow.mode,
        OutcomeRow.screen_detected_cancer,
        OutcomeRow.interval_cancer,
        OutcomeRow.recall,
        per_exam.c.first_n,
        per_exam.c.first_recalls,
        per_exam.c.consensus_n,
        per_exam.c.consensus_recalls,
    )
    query = (
        select(*keys, func.count())
        .select_from(OutcomeRow)
        .join(ExamRow, ExamRow.id == OutcomeRow.exam_id)
        .join(AssignmentRow, AssignmentRow.exam_id == ExamRow.id)
        .outerjoin(per_exam, per_exam.c.assignment_id == AssignmentRow.id)
        .where(
            AssignmentRow.category.is_not(None),
            ExamRow.exam_date >= since,
            ExamRow.exam_date <= until,
        )
        .group_by(*keys)
    )
    with db.engine.connect() as connection:
        rows = connection.execute(query).all()
    if not rows:
        return []
    categories, modes, screens, intervals, file_recalls, first_n, first_r, cons_n, cons_r, n = zip(
        *rows, strict=True
    )
    exams = np.asarray(n, dtype=np.int64)
    category = np.asarray(categories, dtype=np.int64)
    single = np.asarray([ReadingMode(m) is ReadingMode.SINGLE for m in modes])
    screen = np.asarray(screens, dtype=bool)
    interval = np.asarray(intervals, dtype=bool)
    # Recall: as the readers decided where the exam was read here, else the file's.
    read = np.asarray([v is not None for v in first_n])
    final, _ = _final_recall(
        *(
            np.asarray([v or 0 for v in column], dtype=np.int64)
            for column in (first_n, first_r, cons_n, cons_r)
        )
    )
    recall = np.where(read, final, np.asarray([bool(r) for r in file_recalls]))
    known = read | np.asarray([r is not None for r in file_recalls])
    out = []
    for label, first, last in [(b.label, b.first, b.last) for b in bands] + [("all", 1, 10)]:
        mask = (category >= first) & (category <= last)
        recalled = mask & known & recall

        def count(where: np.ndarray) -> int:
            return int(exams[where].sum())

        out.append(
            OutcomeFigures(
                band=label,
                exams=count(mask),
                screen_detected=count(mask & screen),
                recalled=count(recalled),
                recalled_with_cancer=count(recalled & screen),
                interval=count(mask & interval),
                single_read=count(mask & single),
                single_read_interval=count(mask & single & interval),
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
    outcomes = _outcome_figures(db, since, until, bands)
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
    "DeviceWindow",
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
