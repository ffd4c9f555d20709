"""The monitoring report as Prometheus gauges, for the reading service's ``/metrics``.

Labels are sites, devices, bands and rule names: bounded by the programme's equipment and
configuration, never an exam or a patient. Device figures are those of each device's latest
week. ``mammotriage_monitor_alert_active`` is 1 while a rule fires in the latest week of its
device (or site), which is what the shipped alerting rules
(``configs/prometheus/mammotriage-alerts.yml``) page on.
"""

from __future__ import annotations

from datetime import date

from prometheus_client import CollectorRegistry, Gauge

from mammotriage.monitor.report import MonitorReport, finite


class MonitorGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        device = ["site", "device"]
        self.psi = Gauge(
            "mammotriage_monitor_category_psi",
            "PSI of a device's category shares in its latest week against the reference.",
            device,
            registry=registry,
        )
        self.p_value = Gauge(
            "mammotriage_monitor_category_p_value",
            "Chi-square p-value of a device's category shares in its latest week.",
            device,
            registry=registry,
        )
        self.scored = Gauge(
            "mammotriage_monitor_scored_exams",
            "Exams of a device's latest week with a category from the monitored model.",
            device,
            registry=registry,
        )
        self.unusable = Gauge(
            "mammotriage_monitor_unusable_share",
            "Share of a device's images in its latest week that could not be scored.",
            device,
            registry=registry,
        )
        self.partial = Gauge(
            "mammotriage_monitor_partial_share",
            "Share of a device's exams in its latest week that lack a standard view.",
            device,
            registry=registry,
        )
        self.median = Gauge(
            "mammotriage_monitor_median_score",
            "Median exam score of a device's latest week.",
            device,
            registry=registry,
        )
        self.recall = Gauge(
            "mammotriage_monitor_recall_rate",
            "Recall rate of read exams per site and band over the monitoring window.",
            ["site", "band"],
            registry=registry,
        )
        self.active = Gauge(
            "mammotriage_monitor_alert_active",
            "1 while an alert rule fires in the latest week of its device or site.",
            ["rule", "site", "device"],
            registry=registry,
        )
        self.alerts = Gauge(
            "mammotriage_monitor_alerts",
            "Weeks in the monitoring window in which each alert rule fired.",
            ["rule"],
            registry=registry,
        )
        self.last_run = Gauge(
            "mammotriage_monitor_last_run_timestamp_seconds",
            "When the monitoring report was computed (Unix time).",
            registry=registry,
        )

    def update(self, report: MonitorReport, rules: list[str]) -> None:
        for gauge in (
            self.psi,
            self.p_value,
            self.scored,
            self.unusable,
            self.partial,
            self.median,
            self.recall,
            self.active,
            self.alerts,
        ):
            gauge.clear()
        latest_device: dict[tuple[str, str], date] = {}
        for window in report.device_windows():
            site, device, week = window.site, window.device, window.latest
            latest_device[(site, device)] = week.week
            for gauge, value in (
                (self.psi, week.psi),
                (self.p_value, week.p_value),
                (self.unusable, week.unusable_share),
                (self.partial, week.partial_share),
                (self.median, week.median_score),
            ):
                value = finite(value)
                if value is not None:
                    gauge.labels(site=site, device=device).set(value)
            self.scored.labels(site=site, device=device).set(week.scored)
        for figures in report.readers:
            if figures.recall_rate is not None:
                self.recall.labels(site=figures.site, band=figures.band).set(figures.recall_rate)
        latest_site: dict[str, date] = {}
        for figures in report.reader_weeks:
            if figures.week is not None:
                latest_site[figures.site] = max(
                    figures.week, latest_site.get(figures.site, figures.week)
                )
        for rule in rules:
            self.alerts.labels(rule=rule).set(sum(a.rule == rule for a in report.alerts))
        for alert in report.alerts:
            latest = (
                latest_device.get((alert.site, alert.device))
                if alert.device
                else latest_site.get(alert.site)
            )
            if latest is not None and alert.week >= latest:
                self.active.labels(rule=alert.rule, site=alert.site, device=alert.device).set(1)
        self.last_run.set(report.generated_at.timestamp())


__all__ = ["MonitorGauges"]
