"""Prometheus metrics of the reading service, in the app's own registry (no global).

Requests are labelled by route template (``/exams/{exam_id}``), never by the concrete path,
so that no exam id reaches the metrics and their cardinality stays bounded. Worklist sizes
are read from the store when the metrics are scraped, and the monitoring gauges
(``mammotriage_monitor_*``, :class:`~mammotriage.monitor.metrics.MonitorGauges`) from the
service's monitor report (reused for its ``refresh_seconds``). A report that cannot be
computed leaves those gauges as they were (their ``last_run`` among them, which the shipped
stale-report alert watches) and costs one log line, never the scrape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mammotriage.api.monitoring import ServiceMonitor, one_line
from mammotriage.monitor.metrics import MonitorGauges
from mammotriage.triage import TriagePolicy
from mammotriage.worklist import ReadingQueue, Store

log = logging.getLogger(__name__)

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mammotriage_api_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mammotriage_api_request_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.worklist = Gauge(
            "mammotriage_worklist_exams",
            "Exams waiting for a reading, by queue (at scrape time).",
            ["queue"],
            registry=self.registry,
        )
        self.oldest = Gauge(
            "mammotriage_worklist_oldest_waiting_seconds",
            "How long the longest-waiting exam has waited (0 when none waits).",
            registry=self.registry,
        )
        self.monitor = MonitorGauges(self.registry)

    def render(
        self,
        store: Store,
        now: datetime,
        policy: TriagePolicy,
        monitor: ServiceMonitor | None = None,
    ) -> bytes:
        stats = store.readings.queue_stats(now, policy)
        self.worklist.labels(queue=ReadingQueue.ALL.value).set(stats.waiting)
        for queue, count in stats.by_queue.by_name().items():
            self.worklist.labels(queue=queue).set(count)
        self.oldest.set(stats.waiting_seconds.max or 0)
        if monitor is not None and monitor.cached is not None:
            self._update_monitor(monitor, now)
        return bytes(generate_latest(self.registry))

    def _update_monitor(self, monitor: ServiceMonitor, now: datetime) -> None:
        try:
            report = monitor.current(now).report
        except Exception as exc:  # any failure: the scrape still answers (module docstring)
            log.warning(
                "monitoring report not computed for /metrics: %s",
                one_line(exc),
                extra={"event": "monitor-failed"},
            )
            return
        self.monitor.update(report, monitor.rule_names)


class MetricsMiddleware:
    """Counts and times every HTTP request (pure ASGI: sees the route FastAPI matched)."""

    def __init__(
        self, app: ASGIApp, metrics: ApiMetrics, timer: Callable[[], float] = time.perf_counter
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.timer = timer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.timer()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = _route_template(scope)
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(route=route, method=method, status=str(status)).inc()
            self.metrics.latency.labels(route=route, method=method).observe(self.timer() - started)


def _route_template(scope: dict[str, Any] | Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    if str(scope.get("path", "")).startswith("/static/"):
        return "/static"
    return "(unmatched)"


__all__ = ["ApiMetrics", "MetricsMiddleware"]
