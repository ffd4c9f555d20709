"""The worker's settings: one typed object, read from ``configs/worker.yaml`` and the environment.

Relative paths in the file are relative to the file's folder (:mod:`mammotriage.settings`).

Environment variables override the file: ``MAMMOTRIAGE_WORKER_<FIELD>``, nested fields joined
by ``__`` (``MAMMOTRIAGE_WORKER_SOURCE__PASSWORD``, ``MAMMOTRIAGE_WORKER_DATABASE``), so that
passwords need not be written into the file.
"""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from mammotriage import defaults
from mammotriage.hl7.config import Hl7Settings
from mammotriage.settings import FileRelative, YamlSettings, is_url, load_settings


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FolderSourceSettings(_Block):
    """New files in a directory tree; a study is complete after ``quiet_seconds`` of quiet."""

    kind: Literal["folder"] = "folder"
    path: Path
    quiet_seconds: float = Field(default=10.0, ge=0)
    #: Where the SRs are written (``<reports>/<study>/``); never inside ``path``.
    reports: Path | None = None


class OrthancSourceSettings(_Block):
    """Orthanc's REST API: ``/changes`` for StableStudy, instances fetched and SRs posted back."""

    kind: Literal["orthanc"] = "orthanc"
    url: str
    username: str | None = None
    password: SecretStr | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)


class DicomWebSourceSettings(_Block):
    """Any DICOMweb PACS: QIDO-RS for new MG studies, WADO-RS to fetch, STOW-RS to store."""

    kind: Literal["dicomweb"] = "dicomweb"
    url: str
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    lookback_days: int = Field(default=2, ge=0)
    quiet_seconds: float = Field(default=30.0, ge=0)
    timeout_seconds: float = Field(default=30.0, gt=0)


class WriteBackSettings(_Block):
    """The AE the SRs are sent to with C-STORE (the PACS)."""

    ae_title: str = Field(min_length=1, max_length=16)
    host: str
    port: int = Field(ge=1, le=65535)


class CStoreSourceSettings(_Block):
    """Our own C-STORE SCP: modalities and PACS push to us; files land in ``incoming``."""

    kind: Literal["cstore"] = "cstore"
    incoming: Path
    ae_title: str = Field(default="MAMMOTRIAGE", min_length=1, max_length=16)
    host: str = "127.0.0.1"
    port: int = Field(default=11112, ge=1, le=65535)
    #: Calling AE titles accepted; empty: any.
    allowed_calling_aets: tuple[str, ...] = ()
    quiet_seconds: float = Field(default=10.0, ge=0)
    write_back: WriteBackSettings | None = None
    #: Where the SRs are written when there is no ``write_back``.
    reports: Path | None = None


SourceSettings = Annotated[
    FolderSourceSettings | OrthancSourceSettings | DicomWebSourceSettings | CStoreSourceSettings,
    Field(discriminator="kind"),
]


class SrSettings(_Block):
    """The DICOM SR per scored exam (TID 1500, IHE AI Results), sent back to the source."""

    enabled: bool = True


class GspsSettings(_Block):
    """A Grayscale Softcopy Presentation State per exam with findings, sent with the SR."""

    #: Draw the findings' boxes and the category for viewers that show no SR content.
    enabled: bool = False


class ScSettings(_Block):
    """A Secondary Capture per image with findings, the boxes burnt into its pixels, for
    viewers that apply neither SR nor presentation states; sent with the SR."""

    enabled: bool = False


class OutputsSettings(_Block):
    """What the worker writes for each exam besides the worklist, each on or off.

    The DICOM outputs go back the way the studies came (the folder source's ``reports``
    folder, Orthanc, STOW-RS, C-STORE write-back); the HL7 result goes to the RIS over
    MLLP through the store's outbox. Every output's failure is recorded per exam and
    retried with the job (``retry``); it never undoes the exam's triage decision.
    """

    sr: SrSettings = SrSettings()
    gsps: GspsSettings = GspsSettings()
    sc: ScSettings = ScSettings()
    hl7: Hl7Settings = Hl7Settings()

    @property
    def dicom(self) -> bool:
        """Some DICOM output is on (the worker builds a report writer)."""
        return self.sr.enabled or self.gsps.enabled or self.sc.enabled


class RetrySettings(_Block):
    """Backoff for what may pass (PACS down, disk full): base * 2**(attempt-1), capped."""

    max_attempts: int = Field(default=8, ge=1)
    base_seconds: float = Field(default=5.0, gt=0)
    max_seconds: float = Field(default=900.0, gt=0)

    def delay(self, attempts: int) -> timedelta | None:
        """The wait before the next try after ``attempts`` tries; None: give up."""
        if attempts >= self.max_attempts:
            return None
        return timedelta(seconds=min(self.max_seconds, self.base_seconds * 2 ** (attempts - 1)))


class MetricsSettings(_Block):
    #: Serve Prometheus metrics on this port (loopback unless ``host`` says otherwise).
    port: int | None = Field(default=None, ge=0, le=65535)
    host: str = "127.0.0.1"
    #: Also write them to this file after each job (node_exporter's textfile collector).
    textfile: Path | None = None


class WorkerSettings(YamlSettings):
    """Everything one worker process needs."""

    model_config = SettingsConfigDict(
        env_prefix="MAMMOTRIAGE_WORKER_", env_nested_delimiter="__", extra="forbid"
    )

    #: The worker's name in the store: unique per worker process (claims are released
    #: under it when it restarts after a crash).
    name: str = Field(default_factory=socket.gethostname, min_length=1, max_length=200)
    #: SQLite file path or database URL.
    database: Annotated[str, FileRelative(unless=is_url)] = "var/mammotriage.sqlite"
    #: The ONNX model with its sidecar; default: the packaged demonstration model.
    model: Path = Field(default_factory=defaults.model_path)
    #: Run on a model trained on synthetic data (the packaged one is): for the demo and
    #: tests only, never for patients. Without it the worker refuses such a model.
    allow_demonstration_model: bool = False
    #: The triage policy; default: the packaged one (``mammotriage config show`` names it).
    policy: Path = Field(default_factory=defaults.policy_path)
    #: Scratch space for fetched studies and reports (one folder per job, removed after).
    work_dir: Path = Path("var/work")
    poll_seconds: float = Field(default=5.0, gt=0)
    #: What is written for each exam: ``sr`` (on), ``gsps``, ``sc``, ``hl7`` (off).
    outputs: OutputsSettings = OutputsSettings()
    #: PNG thumbnails of the views for the reading service (which must see this folder);
    #: null: none.
    thumbnails_dir: Path | None = Path("var/thumbnails")
    source: SourceSettings
    retry: RetrySettings = RetrySettings()
    metrics: MetricsSettings = MetricsSettings()
    #: ONNX Runtime: execution providers by name (None: best available) and threads.
    providers: tuple[str, ...] | None = None
    threads: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=8, ge=1)
    #: Decode in child processes, so that a codec that crashes or hangs on a hostile file
    #: costs that file (an unusable image with the reason), never the worker.
    isolate_decoding: bool = True
    #: Seconds one file's header read or decode may take when isolated; null: no budget.
    decode_timeout_seconds: float | None = Field(default=120.0, gt=0)
    #: Processes (or threads, without isolation) decoding ahead of inference.
    decode_workers: int = Field(default=2, ge=1)
    #: Studies held at once by the job pipeline (claimed, not yet done): one being fetched,
    #: one decoded, one scored, one having its outputs written. Each holds its fetched files
    #: on disk and its model inputs and thumbnails in memory (about 2 MB), never its pixels.
    #: 1: one study at a time, nothing overlaps.
    studies_in_flight: int = Field(default=3, ge=1, le=64)
    log_format: Literal["json", "text"] = "json"

    @model_validator(mode="before")
    @classmethod
    def _moved_settings(cls, data: Any) -> Any:
        """Settings of earlier releases that moved into ``outputs``: say where to."""
        if isinstance(data, dict):
            for old, new in _MOVED.items():
                if old in data:
                    raise ValueError(f"{old} moved: write {new} instead")
        return data


#: Earlier settings and where they live now.
_MOVED = {"write_reports": "outputs: {sr: {enabled: ...}}", "gsps": "outputs: {gsps: ...}"}


def load_worker_settings(path: Path | None, **overrides: Any) -> WorkerSettings:
    """Read the worker's settings from a YAML file (and the environment).

    Raises
    ------
    ConfigError
        If the file is missing or not YAML, or a value is wrong (the message names it).
    """
    return load_settings(WorkerSettings, path, "worker", **overrides)


__all__ = [
    "CStoreSourceSettings",
    "DicomWebSourceSettings",
    "FolderSourceSettings",
    "GspsSettings",
    "MetricsSettings",
    "OutputsSettings",
    "OrthancSourceSettings",
    "RetrySettings",
    "ScSettings",
    "SourceSettings",
    "SrSettings",
    "WorkerSettings",
    "WriteBackSettings",
    "load_worker_settings",
]
