"""Run the monitor: build the report, store the alerts it raised, log the new ones.

The command (``mammotriage monitor``) runs it once; the reading service keeps the last
report for ``refresh_seconds`` (:class:`CachedMonitor`) and serves it on the admin page and
as Prometheus metrics. Either way an alert is stored once (the store's unique constraint)
and logged when it is new, as one JSON-ready line without any patient identifier.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from mammotriage.monitor.report import MonitorReport, build_report
from mammotriage.monitor.settings import MonitorSettings
from mammotriage.sidecar import Sidecar, load_sidecar
from mammotriage.triage import TriagePolicy
from mammotriage.triage.policy import load_policy
from mammotriage.worklist import Store
from mammotriage.worklist.monitoring import StoredAlert

log = logging.getLogger("mammotriage.monitor")


@dataclass(frozen=True)
class MonitorRun:
    report: MonitorReport
    #: The alerts of this run that were not stored before.
    new_alerts: tuple[StoredAlert, ...]


class Monitor:
    """The monitor of one store, with the model and policy of ``settings``.

    Raises
    ------
    ConfigError
        If the model's sidecar or the policy cannot be read.
    """

    def __init__(self, store: Store, settings: MonitorSettings) -> None:
        self.store = store
        self.settings = settings
        # The hash of the .onnx is the key of its scores; the file itself is not needed.
        self.sidecar: Sidecar = load_sidecar(settings.model, verify_hash=False)
        self.policy: TriagePolicy = load_policy(settings.policy)

    def default_since(self, today: date) -> date:
        """The first day of the default window: ``weeks`` whole weeks to ``today``'s."""
        monday = today - timedelta(days=today.weekday())
        return monday - timedelta(weeks=self.settings.weeks - 1)

    def run(
        self, now: datetime, since: date | None = None, until: date | None = None
    ) -> MonitorRun:
        """The report of ``since`` (default: :meth:`default_since`) to ``until`` (default:
        today), its alerts stored and the new ones logged."""
        today = now.date()
        report = build_report(
            self.store.db,
            self.sidecar,
            self.policy,
            self.settings.alerts,
            since=since or self.default_since(today),
            until=until or today,
            now=now,
        )
        new = self.store.monitoring.record_alerts(
            [
                StoredAlert(a.rule, a.site, a.device, a.week, a.value, a.threshold, a.message, now)
                for a in report.alerts
            ]
        )
        for alert in new:
            log.warning(
                "monitor alert: %s",
                alert.message,
                extra={
                    "event": "monitor-alert",
                    "rule": alert.rule,
                    "site": alert.site,
                    "device": alert.device,
                    "week": alert.week.isoformat(),
                    "value": round(alert.value, 6),
                },
            )
        return MonitorRun(report, tuple(new))


class CachedMonitor:
    """A :class:`Monitor` whose last run is reused for ``refresh_seconds`` (thread-safe:
    one run at a time; a request during a run waits for it rather than starting another)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self._lock = threading.Lock()
        self._last: MonitorRun | None = None

    def current(self, now: datetime) -> MonitorRun:
        with self._lock:
            last = self._last
            age = None if last is None else (now - last.report.generated_at).total_seconds()
            if (
                last is None
                or age is None
                or age < 0
                or age >= self.monitor.settings.refresh_seconds
            ):
                last = self._last = self.monitor.run(now)
            return last


__all__ = ["CachedMonitor", "Monitor", "MonitorRun"]
