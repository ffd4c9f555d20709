"""The reading service's monitoring: one :class:`~mammotriage.monitor.CachedMonitor` per
app on the service's own store, and what the admin's monitoring view shows of its report.

The monitor's settings come from the file ``ApiSettings.monitor`` names (``configs/
monitor.yaml``; none: the built-in rules), less its ``database``: the service watches the
store it serves. A monitor whose model sidecar or policy cannot be read (the model may live
on the worker's machine only) does not keep the service from starting: the monitoring view
says why it is unavailable and ``/metrics`` leaves the monitor's gauges alone, so the
shipped stale-report alert fires.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup

from mammotriage.api.monitor_plots import device_plot
from mammotriage.api.settings import ApiSettings
from mammotriage.errors import ConfigError, MammotriageError
from mammotriage.monitor import CachedMonitor, Monitor, MonitorRun, MonitorSettings
from mammotriage.monitor.render import number, percent
from mammotriage.monitor.report import MonitorReport, finite
from mammotriage.monitor.settings import load_monitor_settings
from mammotriage.worklist import Store
from mammotriage.worklist.monitoring import StoredAlert

log = logging.getLogger(__name__)

#: The most stored alerts the monitoring view and ``/admin/monitor`` list (newest first).
STORED_ALERTS_SHOWN = 200


class MonitorUnavailable(MammotriageError):
    """The monitor could not be built (its model or policy); the message says why."""


@dataclass(frozen=True)
class ServiceMonitor:
    """The app's monitor, or why there is none (``error``)."""

    settings: MonitorSettings
    cached: CachedMonitor | None
    error: str | None = None

    @classmethod
    def open(cls, store: Store, settings: ApiSettings) -> ServiceMonitor:
        """The monitor of ``store`` with the settings of ``settings.monitor``.

        Raises
        ------
        ConfigError
            If the monitor's settings file cannot be read or holds a wrong value (like any
            other wrong setting of the service). A model or policy that cannot be read is
            not raised: it becomes :attr:`error`.
        """
        monitor_settings = load_monitor_settings(settings.monitor)
        try:
            monitor = Monitor(store, monitor_settings)
        except ConfigError as exc:
            error = f"monitoring unavailable: {exc}"
            log.warning("%s", error, extra={"event": "monitor-unavailable"})
            return cls(monitor_settings, None, error)
        return cls(monitor_settings, CachedMonitor(monitor))

    @property
    def rule_names(self) -> list[str]:
        return [rule.name for rule in self.settings.alerts]

    @property
    def psi_threshold(self) -> float | None:
        """The threshold of the first PSI rule (the plots' dashed line); None without one."""
        return next((r.above for r in self.settings.alerts if r.metric == "psi"), None)

    def current(self, now: datetime) -> MonitorRun:
        """The latest run (computed again once ``refresh_seconds`` old).

        Raises
        ------
        MonitorUnavailable
            If there is no monitor (:attr:`error`).
        """
        if self.cached is None:
            raise MonitorUnavailable(self.error or "monitoring unavailable")
        return self.cached.current(now)


def one_line(exc: BaseException) -> str:
    """``exc`` as one short line for the log: its type and the first line of its message (a
    database error's later lines hold the statement and its parameters)."""
    first = (str(exc).splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


# -- the view -----------------------------------------------------------------------------


def _fraction(part: int, whole: int, rate: float | None) -> str:
    return f"{part} of {whole} ({percent(rate)})" if whole else "-"


@dataclass(frozen=True)
class DeviceView:
    site: str
    device: str
    plot: Markup
    alerts: tuple[str, ...]
    weeks: int
    exams: int
    latest: dict[str, str]
    unusable: str
    partial: str
    #: Unusable images over the window by reason, most first.
    reasons: tuple[tuple[str, int], ...]
    #: Partial exams over the window by the standard view they lack, most first.
    partial_reasons: tuple[tuple[str, int], ...] = ()


def device_views(report: MonitorReport, psi_threshold: float | None) -> list[DeviceView]:
    """Each device's plot and figures; a device for which a rule fired in the window is
    marked with the rules' names."""
    fired: dict[tuple[str, str], list[str]] = defaultdict(list)
    for alert in report.alerts:
        names = fired[(alert.site, alert.device)]
        if alert.device and alert.rule not in names:
            names.append(alert.rule)
    views = []
    for window in report.device_windows():
        site, device, weeks, latest = window.site, window.device, window.weeks, window.latest
        alerts = tuple(fired.get((site, device), ()))
        views.append(
            DeviceView(
                site=site,
                device=device,
                plot=Markup(  # device_plot escapes every text it writes
                    device_plot(
                        weeks,
                        report.reference.shares,
                        psi_threshold=psi_threshold,
                        alerts=alerts,
                    )
                ),
                alerts=alerts,
                weeks=len(weeks),
                exams=window.exams,
                latest={
                    "week": latest.week.isoformat(),
                    "scored": str(latest.scored),
                    "median": number(latest.median_score, "{:.1f}"),
                    "psi": number(latest.psi),
                    "p": number(latest.p_value, "{:.2g}"),
                },
                unusable=_fraction(window.unusable_images, window.images, window.unusable_share),
                partial=_fraction(window.partial, window.exams, window.partial_share),
                reasons=tuple(window.unusable_by_reason),
                partial_reasons=tuple(window.partial_by_reason),
            )
        )
    return views


def reader_rows(report: MonitorReport) -> list[dict[str, str]]:
    """The reader table: per site and band with read exams."""
    return [
        {
            "site": f.site,
            "band": f.band,
            "read": str(f.read),
            "recall_rate": percent(f.recall_rate),
            "disagreement": _fraction(f.disagreed, f.double_read, f.disagreement_rate),
            "single_recalled": _fraction(
                f.single_recalled,
                f.single_read,
                f.single_recalled / f.single_read if f.single_read else None,
            ),
            "single_recalled_in_consensus": str(f.single_recalled_in_consensus),
        }
        for f in report.readers
        if f.read
    ]


def outcome_rows(report: MonitorReport) -> list[dict[str, str]]:
    """The outcomes table: per band with imported outcomes."""
    return [
        {
            "band": f.band,
            "exams": str(f.exams),
            "screen_detected": str(f.screen_detected),
            "detection_per_1000": number(f.detection_per_1000, "{:.1f}"),
            "recalled": str(f.recalled),
            "ppv_of_recall": percent(f.ppv_of_recall),
            "interval": str(f.interval),
            "single_read_interval": f"{f.single_read_interval} of {f.single_read}",
        }
        for f in report.outcomes
        if f.exams
    ]


def alert_rows(stored: Sequence[StoredAlert]) -> list[dict[str, str]]:
    """The stored alerts, in the order given (the store's: newest week first)."""
    return [
        {
            "week": a.week.isoformat(),
            "rule": a.rule,
            "site": a.site,
            "device": a.device or "-",
            "value": number(a.value, "{:.3g}"),
            "threshold": f"{a.threshold:g}",
            "message": a.message,
            "raised_at": a.raised_at.strftime("%Y-%m-%d %H:%M"),
        }
        for a in stored
    ]


def stored_alert_json(alert: StoredAlert) -> dict[str, Any]:
    return {
        "rule": alert.rule,
        "site": alert.site,
        "device": alert.device,
        "week": alert.week.isoformat(),
        "value": finite(alert.value),
        "threshold": alert.threshold,
        "message": alert.message,
        "raised_at": alert.raised_at.isoformat(),
    }


__all__ = [
    "STORED_ALERTS_SHOWN",
    "DeviceView",
    "MonitorUnavailable",
    "ServiceMonitor",
    "alert_rows",
    "device_views",
    "one_line",
    "outcome_rows",
    "reader_rows",
    "stored_alert_json",
]
