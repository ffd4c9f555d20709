"""The monitoring report as JSON (``monitor --json``, the admin API) and as text (the
terminal, the end of ``make demo``)."""

from __future__ import annotations

from typing import Any

from mammotriage.monitor.report import (
    DeviceWeek,
    MonitorReport,
    OutcomeFigures,
    ReaderFigures,
    finite,
)


def _round(value: float | None, digits: int = 4) -> float | None:
    value = finite(value)
    return None if value is None else round(value, digits)


def device_week_json(week: DeviceWeek) -> dict[str, Any]:
    return {
        "site": week.site,
        "device": week.device,
        "week": week.week.isoformat(),
        "exams": week.exams,
        "scored": week.scored,
        "category_counts": list(week.counts),
        "category_shares": None if week.shares is None else [round(s, 4) for s in week.shares],
        "psi": _round(week.psi),
        "chi_square": _round(week.chi_square, 3),
        "p_value": finite(week.p_value),
        "median_score": _round(week.median_score, 2),
        "other_model": week.other_model,
        "unscored": week.unscored,
        "partial": week.partial,
        "partial_share": _round(week.partial_share),
        "images": week.images,
        "unusable_images": week.unusable_images,
        "unusable_share": _round(week.unusable_share),
        "unusable_by_reason": dict(sorted(week.unusable_by_reason.items())),
        "partial_by_reason": dict(sorted(week.partial_by_reason.items())),
    }


def reader_json(figures: ReaderFigures) -> dict[str, Any]:
    return {
        "site": figures.site,
        "band": figures.band,
        "week": None if figures.week is None else figures.week.isoformat(),
        "read": figures.read,
        "recalled": figures.recalled,
        "recall_rate": _round(figures.recall_rate),
        "double_read": figures.double_read,
        "disagreed": figures.disagreed,
        "disagreement_rate": _round(figures.disagreement_rate),
        "single_read": figures.single_read,
        "single_recalled": figures.single_recalled,
        "single_recalled_in_consensus": figures.single_recalled_in_consensus,
    }


def outcome_json(figures: OutcomeFigures) -> dict[str, Any]:
    return {
        "band": figures.band,
        "exams": figures.exams,
        "screen_detected": figures.screen_detected,
        "detection_per_1000": _round(figures.detection_per_1000, 2),
        "recalled": figures.recalled,
        "recalled_with_cancer": figures.recalled_with_cancer,
        "ppv_of_recall": _round(figures.ppv_of_recall),
        "interval": figures.interval,
        "single_read": figures.single_read,
        "single_read_interval": figures.single_read_interval,
        "single_read_interval_per_1000": _round(figures.single_read_interval_per_1000, 2),
    }


def report_json(report: MonitorReport) -> dict[str, Any]:
    """Everything in the report, with plain JSON types (dates as ISO strings)."""
    reference = report.reference
    return {
        "generated_at": report.generated_at.isoformat(),
        "since": report.since.isoformat(),
        "until": report.until.isoformat(),
        "reference": {
            "model": reference.model_name,
            "model_sha256": reference.model_sha256,
            "category_shares": None if reference.shares is None else list(reference.shares),
            "description": reference.description,
        },
        "bands": [b.label for b in report.bands],
        "devices": [device_week_json(w) for w in report.device_weeks],
        "readers": [reader_json(f) for f in report.readers],
        "outcomes": [outcome_json(f) for f in report.outcomes],
        "alerts": [
            {
                "rule": a.rule,
                "site": a.site,
                "device": a.device,
                "week": a.week.isoformat(),
                "value": _round(a.value),
                "threshold": a.threshold,
                "message": a.message,
            }
            for a in report.alerts
        ],
        "notes": list(report.notes),
    }


def percent(value: float | None) -> str:
    """A share as ``12.3%``; ``-`` when unknown."""
    value = finite(value)
    return "-" if value is None else f"{value:.1%}"


def number(value: float | None, fmt: str = "{:.2f}") -> str:
    """A figure in ``fmt``; ``-`` when unknown."""
    value = finite(value)
    return "-" if value is None else fmt.format(value)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line.rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return out


def report_text(report: MonitorReport) -> str:
    """A terminal summary: devices (over the window and their latest week), readers,
    outcomes, alerts."""
    lines = [
        f"monitoring {report.since.isoformat()} to {report.until.isoformat()}; reference: "
        f"{report.reference.model_name}, {report.reference.description}",
        "",
        "devices (all weeks; PSI and p of the latest week against the reference):",
    ]
    rows = []
    for window in report.device_windows():
        latest = window.latest
        rows.append(
            [
                window.site,
                window.device,
                str(len(window.weeks)),
                str(window.exams),
                number(latest.median_score, "{:.1f}"),
                number(latest.psi),
                number(latest.p_value, "{:.2g}"),
                percent(window.unusable_share),
                percent(window.partial_share),
            ]
        )
    lines += (
        _table(
            ["site", "device", "weeks", "exams", "median", "PSI", "p", "unusable", "partial"], rows
        )
        if rows
        else ["  no exams in this window"]
    )
    if rows:
        lines.append(
            "  (a week's PSI is noisy below about 50 exams, near 9/n by chance alone; the "
            "drift rule also asks the chi-square test)"
        )
    readers = [f for f in report.readers if f.read]
    lines += ["", "readers (read exams; recall as finally decided):"]
    if readers:
        lines += _table(
            ["site", "band", "read", "recall", "double-read disagree", "single recalled"],
            [
                [
                    f.site,
                    f.band,
                    str(f.read),
                    percent(f.recall_rate),
                    f"{f.disagreed}/{f.double_read}",
                    f"{f.single_recalled}/{f.single_read}",
                ]
                for f in readers
            ],
        )
    else:
        lines.append("  no exam read yet")
    lines += ["", "outcomes (imported):"]
    if any(f.exams for f in report.outcomes):
        lines += _table(
            ["band", "exams", "cancers", "per 1000", "PPV of recall", "interval (single-read)"],
            [
                [
                    f.band,
                    str(f.exams),
                    str(f.screen_detected),
                    number(f.detection_per_1000, "{:.1f}"),
                    percent(f.ppv_of_recall),
                    f"{f.interval} ({f.single_read_interval})",
                ]
                for f in report.outcomes
                if f.exams
            ],
        )
    else:
        lines.append("  none imported (mammotriage outcomes import FILE)")
    lines += ["", f"alerts: {len(report.alerts)}"]
    lines += [f"  {a.message}" for a in report.alerts]
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


__all__ = ["number", "percent", "report_json", "report_text"]
