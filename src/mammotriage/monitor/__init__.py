"""Monitoring after go-live: drift per device, reader behaviour and outcomes per band, from
the worklist store, with alert rules (``configs/monitor.yaml``).

:class:`Monitor` runs it (``mammotriage monitor``; the reading service's admin page and
``/metrics`` through :class:`CachedMonitor`); :mod:`mammotriage.monitor.report` says what
each figure is.
"""

from mammotriage.monitor.render import report_json, report_text
from mammotriage.monitor.report import Alert, DeviceWeek, MonitorReport, build_report
from mammotriage.monitor.service import CachedMonitor, Monitor, MonitorRun
from mammotriage.monitor.settings import (
    DEFAULT_RULES,
    AlertRule,
    MonitorSettings,
    load_monitor_settings,
)

__all__ = [
    "DEFAULT_RULES",
    "Alert",
    "AlertRule",
    "CachedMonitor",
    "DeviceWeek",
    "Monitor",
    "MonitorReport",
    "MonitorRun",
    "MonitorSettings",
    "build_report",
    "load_monitor_settings",
    "report_json",
    "report_text",
]
