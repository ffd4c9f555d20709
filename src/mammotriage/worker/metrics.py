"""Prometheus metrics of one worker: what it scored, how fast, what failed, what waits.

Each worker has its own registry (no module-level global): served on a loopback port and/or
written to a text file for node_exporter's textfile collector.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import start_http_server

from mammotriage.atomic import atomic_write
from mammotriage.errors import ConfigError
from mammotriage.worklist import JobStatus
from mammotriage.worklist.models import OutboxState, OutputState
from mammotriage.worklist.outputs import OUTPUTS

_LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)


class WorkerMetrics:
    """The worker's counters, histograms and gauges, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.exams = Counter(
            "mammotriage_exams_total",
            "Exams stored by the worker, by outcome (scored, unscored, rejected).",
            ["status"],
            registry=self.registry,
        )
        self.categories = Counter(
            "mammotriage_exams_by_category_total",
            "Scored exams per category 1-10 (rate() over time gives each category's share).",
            ["category"],
            registry=self.registry,
        )
        self.failures = Counter(
            "mammotriage_job_failures_total",
            "Jobs that did not end scored: retry (will be tried again), failed (given up), "
            "error (a fault of mammotriage itself).",
            ["kind"],
            registry=self.registry,
        )
        self.output_failures = Counter(
            "mammotriage_output_failures_total",
            "Outputs of a stored exam that could not be written (sr, gsps, sc, hl7, "
            "thumbnails); the job is retried, the other outputs are still made.",
            ["output"],
            registry=self.registry,
        )
        self.reports = Counter(
            "mammotriage_reports_sent_total",
            "DICOM SRs sent back to the source.",
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "mammotriage_job_seconds",
            "Time from a job's claim to its end: fetch, score, store, write back (with the "
            "waits between the pipeline's stages).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "mammotriage_stage_seconds",
            "Time one study spends in each stage of the job pipeline (fetch, decode, score, "
            "outputs), waits excluded: the slowest stage sets the worker's pace.",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.arrival_to_worklist = Histogram(
            "mammotriage_arrival_to_worklist_seconds",
            "From the study's arrival (queued) to its exam on the worklist.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue = Gauge(
            "mammotriage_jobs",
            "Jobs in the store by status (queue depth: QUEUED).",
            ["status"],
            registry=self.registry,
        )

        self.outputs = Gauge(
            "mammotriage_exam_outputs",
            "Exams by output (sr, gsps, sc, hl7, thumbnails) and the state of its latest "
            "attempt (done, failed).",
            ["output", "state"],
            registry=self.registry,
        )
        self.outbox = Gauge(
            "mammotriage_hl7_outbox_messages",
            "HL7 result messages in the outbox by state (queued: waiting for the RIS; "
            "delivered: acknowledged; failed: refused by the RIS, waiting for an operator).",
            ["state"],
            registry=self.registry,
        )
        self.outbox_oldest = Gauge(
            "mammotriage_hl7_outbox_oldest_undelivered_seconds",
            "Age of the oldest HL7 message not yet delivered (0: none waits).",
            registry=self.registry,
        )
        self.hl7_sent = Counter(
            "mammotriage_hl7_send_attempts_total",
            "HL7 messages sent to the RIS by outcome (delivered, retry, rejected).",
            ["outcome"],
            registry=self.registry,
        )

    def set_outputs(self, counts: Mapping[tuple[str, OutputState], int]) -> None:
        """Every output and state, 0 where none (a series that drops to 0 stays visible)."""
        for output in OUTPUTS:
            for state in OutputState:
                self.outputs.labels(output=output, state=state.value).set(
                    counts.get((output, state), 0)
                )

    def set_outbox(
        self, counts: Mapping[OutboxState, int], oldest_queued_seconds: float | None
    ) -> None:
        for state, n in counts.items():
            self.outbox.labels(state=state.value).set(n)
        self.outbox_oldest.set(oldest_queued_seconds or 0.0)

    def set_queue(self, counts: dict[JobStatus, int]) -> None:
        for status, n in counts.items():
            self.queue.labels(status=status.value).set(n)

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``host:port`` (0: a free port); returns the port.

        Raises
        ------
        ConfigError
            If the port is taken or the address cannot be bound (the message names
            ``metrics.port`` and the port).
        """
        try:
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            why = "is already in use" if exc.errno == errno.EADDRINUSE else (
                f"cannot be bound: {exc.strerror or exc}"
            )
            raise ConfigError(
                f"metrics.port {port}: {host}:{port} {why}; choose another metrics.port "
                "(or null for none)"
            ) from exc
        return int(server.server_port)

    def text(self) -> str:
        return generate_latest(self.registry).decode()

    def write(self, path: Path) -> None:
        """Write the metrics to ``path`` atomically (the textfile collector reads it any time)."""
        with atomic_write(path) as out:
            out.write(self.text().encode())


__all__ = ["WorkerMetrics"]
