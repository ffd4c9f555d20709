"""``GET /admin/monitor``'s answer: the monitoring report as ``mammotriage monitor --json``
prints it (:func:`mammotriage.monitor.report_json`), typed for the API's schema, plus the
alerts stored so far. Sites, devices, bands and rule names only: no exam, no patient."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class MonitorReferenceOut(_Out):
    model: str
    model_sha256: str
    #: Share per category 1-10; null when the model is not calibrated.
    category_shares: list[float] | None
    description: str


class MonitorDeviceWeekOut(_Out):
    site: str
    device: str
    #: The Monday of the week.
    week: date
    exams: int
    scored: int
    category_counts: list[int]
    category_shares: list[float] | None
    psi: float | None
    chi_square: float | None
    p_value: float | None
    median_score: float | None
    other_model: int
    unscored: int
    partial: int
    partial_share: float | None
    images: int
    unusable_images: int
    unusable_share: float | None
    unusable_by_reason: dict[str, int]
    partial_by_reason: dict[str, int]


class MonitorReaderOut(_Out):
    site: str
    band: str
    week: date | None
    read: int
    recalled: int
    recall_rate: float | None
    double_read: int
    disagreed: int
    disagreement_rate: float | None
    single_read: int
    single_recalled: int
    single_recalled_in_consensus: int


class MonitorOutcomeOut(_Out):
    band: str
    exams: int
    screen_detected: int
    detection_per_1000: float | None
    recalled: int
    recalled_with_cancer: int
    ppv_of_recall: float | None
    interval: int
    single_read: int
    single_read_interval: int
    single_read_interval_per_1000: float | None


class MonitorAlertOut(_Out):
    rule: str
    site: str
    #: Empty for a site's rule (recall rate).
    device: str
    week: date
    value: float | None
    threshold: float
    message: str


class MonitorStoredAlertOut(MonitorAlertOut):
    #: When the monitor first raised it.
    raised_at: datetime


class MonitorOut(_Out):
    generated_at: datetime
    since: date
    until: date
    reference: MonitorReferenceOut
    bands: list[str]
    #: Per site, device and week, oldest week first.
    devices: list[MonitorDeviceWeekOut]
    readers: list[MonitorReaderOut]
    outcomes: list[MonitorOutcomeOut]
    #: The alerts of the report's window.
    alerts: list[MonitorAlertOut]
    notes: list[str]
    #: Alerts stored so far (each once per rule, site, device and week), newest week first.
    stored_alerts: list[MonitorStoredAlertOut]


__all__ = ["MonitorOut"]
