"""Build a worker from its settings: source, store, scoring engine, policy, reports, metrics.

Source classes are imported only for the kind configured (the C-STORE SCP pulls in
pynetdicom, the PACS sources httpx).
"""

from __future__ import annotations

import logging
from pathlib import Path

from mammotriage.errors import ConfigError
from mammotriage.infer.engine import ScoringEngine
from mammotriage.triage import load_policy
from mammotriage.worker.config import (
    CStoreSourceSettings,
    DicomWebSourceSettings,
    FolderSourceSettings,
    OrthancSourceSettings,
    SourceSettings,
    WorkerSettings,
)
from mammotriage.worker.crashpoints import crash_point
from mammotriage.worker.loop import Worker
from mammotriage.worker.metrics import WorkerMetrics
from mammotriage.worker.report import ReportWriter
from mammotriage.worker.source import Source
from mammotriage.worklist import Store
from mammotriage.worklist.database import sqlite_file
from mammotriage.worklist.outbox import DeliveryRound

log = logging.getLogger("mammotriage.worker")


def ensure_folder(path: Path, setting: str) -> None:
    """Create a folder the worker writes into (database, scratch, thumbnails, received files)
    if it is missing, and say so in the log; a folder it only reads from is never created.

    Raises
    ------
    ConfigError
        If it cannot be created (the message names the setting).
    """
    if path.is_dir():
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot create folder {path}: {exc.strerror or exc}") from exc
    log.info(
        "created folder %s for %s",
        path,
        setting,
        extra={"event": "folder-created", "setting": setting, "path": str(path)},
    )


def build_source(settings: SourceSettings) -> Source:
    """The source the settings describe, ready to poll (a C-STORE SCP is listening)."""
    if isinstance(settings, FolderSourceSettings):
        from mammotriage.worker.sources.folder import FolderSource

        if not settings.path.is_dir():
            # Not created: a missing folder is a typo or a share that is not mounted, and a
            # worker watching an empty folder of its own would report "0 jobs" for ever.
            raise ConfigError(
                f"source.path {settings.path} does not exist or is not a folder: the folder the "
                "studies arrive in must be there (mounted, readable) before the worker starts"
            )
        return FolderSource(
            settings.path, quiet_seconds=settings.quiet_seconds, reports_dir=settings.reports
        )
    if isinstance(settings, OrthancSourceSettings):
        from mammotriage.worker.sources.orthanc import OrthancSource

        return OrthancSource(
            settings.url,
            username=settings.username,
            password=None if settings.password is None else settings.password.get_secret_value(),
            timeout=settings.timeout_seconds,
        )
    if isinstance(settings, DicomWebSourceSettings):
        from mammotriage.worker.sources.dicomweb import DicomWebSource

        return DicomWebSource(
            settings.url,
            username=settings.username,
            password=None if settings.password is None else settings.password.get_secret_value(),
            token=None if settings.token is None else settings.token.get_secret_value(),
            lookback_days=settings.lookback_days,
            quiet_seconds=settings.quiet_seconds,
            timeout=settings.timeout_seconds,
        )
    if isinstance(settings, CStoreSourceSettings):
        from mammotriage.worker.sources.cstore import CStoreSource, WriteBack

        ensure_folder(settings.incoming, "source.incoming")
        write_back = (
            None
            if settings.write_back is None
            else WriteBack(
                settings.write_back.ae_title,
                settings.write_back.host,
                settings.write_back.port,
                calling_ae_title=settings.ae_title,
            )
        )
        return CStoreSource(
            settings.incoming,
            quiet_seconds=settings.quiet_seconds,
            write_back=write_back,
            ae_title=settings.ae_title,
            host=settings.host,
            port=settings.port,
            allowed_calling_aets=set(settings.allowed_calling_aets) or None,
            reports_dir=settings.reports,
        )
    raise AssertionError(f"unknown source settings {settings!r}")  # pydantic rules this out


def build_worker(settings: WorkerSettings, *, source: Source | None = None) -> Worker:
    """A worker with everything the settings name, its store migrated to the newest schema.

    Raises
    ------
    ConfigError
        If the model, policy, database URL or source settings are wrong.
    StoreError
        If the database cannot be reached or migrated.
    """
    policy = load_policy(settings.policy)
    engine = ScoringEngine(
        settings.model,
        batch_size=settings.batch_size,
        providers=settings.providers,
        threads=settings.threads,
        decode_workers=settings.decode_workers,
        executor="process" if settings.isolate_decoding else "thread",
        decode_timeout=settings.decode_timeout_seconds if settings.isolate_decoding else None,
    )
    if engine.sidecar.demonstration and not settings.allow_demonstration_model:
        engine.close()
        raise ConfigError(
            f"model {settings.model} is a demonstration model (trained on synthetic data), "
            "not for clinical use; the worker runs it only with "
            "allow_demonstration_model: true in its config"
        )
    crash_point("after-model-load")
    database = sqlite_file(settings.database)
    if database is not None:
        ensure_folder(database.parent, "database")
    store = Store(settings.database)
    store.migrate()
    metrics = WorkerMetrics()
    reports = (
        ReportWriter(
            engine.sidecar.name,
            demonstration=engine.sidecar.demonstration,
            presentation_state=settings.outputs.gsps.enabled,
            secondary_capture=settings.outputs.sc.enabled,
        )
        if settings.outputs.dicom
        else None
    )
    ensure_folder(settings.work_dir, "work_dir")
    if settings.thumbnails_dir is not None:
        ensure_folder(settings.thumbnails_dir, "thumbnails_dir")
    if settings.metrics.textfile is not None:
        ensure_folder(settings.metrics.textfile.parent, "metrics.textfile")
    after_job = None
    if settings.metrics.textfile is not None:
        textfile = settings.metrics.textfile

        def after_job() -> None:
            metrics.write(textfile)

    results = sender = None
    hl7 = settings.outputs.hl7
    if hl7.enabled:
        from mammotriage.hl7.mllp import MllpClient
        from mammotriage.worker.hl7_output import OutboxSender, ResultMessages, backoff_of

        assert hl7.host is not None and hl7.port is not None  # the settings require them
        results = ResultMessages(
            hl7, engine.sidecar.name, demonstration=engine.sidecar.demonstration
        )
        client = MllpClient(
            hl7.host,
            hl7.port,
            connect_timeout=hl7.connect_timeout_seconds,
            read_timeout=hl7.read_timeout_seconds,
        )
        sender = OutboxSender(
            store,
            client,
            backoff=backoff_of(hl7),
            join_timeout=hl7.connect_timeout_seconds + hl7.read_timeout_seconds + 5,
        )
    outputs = frozenset(
        name for name in ("sr", "gsps", "sc") if getattr(settings.outputs, name).enabled
    )
    worker = Worker(
        name=settings.name,
        source=source if source is not None else build_source(settings.source),
        store=store,
        engine=engine,
        policy=policy,
        work_dir=settings.work_dir,
        retry=settings.retry,
        reports=reports,
        metrics=metrics,
        poll_seconds=settings.poll_seconds,
        after_job=after_job,
        thumbnails_dir=settings.thumbnails_dir,
        outputs=outputs,
        results=results,
        sender=sender,
        studies_in_flight=settings.studies_in_flight,
    )
    if sender is not None:

        def on_round(done: DeliveryRound) -> None:
            metrics.hl7_sent.labels(outcome="delivered").inc(done.delivered)
            metrics.hl7_sent.labels(outcome="rejected").inc(done.failed)
            metrics.hl7_sent.labels(outcome="retry").inc(int(done.waiting))
            if done.delivered or done.failed or done.waiting:
                worker.refresh_output_metrics()

        sender.on_round = on_round
    return worker


__all__ = ["build_source", "build_worker", "ensure_folder"]
