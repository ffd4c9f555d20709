"""A store whose exams come from three devices, one of which drifts: written straight through
the store's API (no images, no model run), each exam dated by its StudyDate into a chosen
week and scored by the packaged model, so that the reading service's monitor (its default
model) takes the scores for its own.

Every week each device has ``per_week`` exams. The steady devices spread them evenly over
categories 1-10 (the calibration's reference: PSI 0); the drifting one does so in its first
week and then puts them all in categories 9 and 10.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import yaml

from api_site import exam_score
from mammotriage import defaults
from mammotriage.monitor import DEFAULT_RULES
from mammotriage.sidecar import load_sidecar
from mammotriage.triage import ExamForTriage, TriagePolicy, decide
from mammotriage.worklist import Store
from mammotriage.worklist.exams import AcquisitionSite, StudyIdentifiers

PACKAGED_SHA = load_sidecar(defaults.model_path(), verify_hash=False).sha256
SITE = "St. Mary & St. John"
STEADY = AcquisitionSite(SITE, "HOLOGIC", "Selenia Dimensions", "ROOM-1")
DRIFTING = AcquisitionSite(SITE, "ACME", "Senograph", "ROOM-2")
ELSEWHERE = AcquisitionSite("Clinic South", "HOLOGIC", "Selenia Dimensions", "ROOM-7")
DEVICES = (STEADY, DRIFTING, ELSEWHERE)
#: Each device's exams per week: one per category when spread evenly.
PER_WEEK = 10
#: The ``min_exams`` of the test's rules (the defaults ask for 50 or 20 exams a week).
MIN_EXAMS = 10
STUDY_ROOT = "1.2.826.0.1.3680043.9.7777.17"


def device_name(device: AcquisitionSite) -> str:
    """The device as the monitor names it (Manufacturer / Model / Station)."""
    return f"{device.manufacturer} / {device.device_model} / {device.station_name}"


def mondays_before(today: date, weeks: int) -> list[date]:
    """The Mondays of the ``weeks`` whole weeks before ``today``'s, oldest first."""
    monday = today - timedelta(days=today.weekday())
    return [monday - timedelta(weeks=weeks - k) for k in range(weeks)]


def categories_of(device: AcquisitionSite, week_index: int) -> list[int]:
    if device is DRIFTING and week_index > 0:
        return [9 + k % 2 for k in range(PER_WEEK)]
    return [1 + k % 10 for k in range(PER_WEEK)]


def seed_drift(store: Store, weeks: list[date], policy: TriagePolicy) -> None:
    """``PER_WEEK`` exams per device and week of ``weeks`` (the drifting device drifts from
    the second week on), each on the week's Tuesday."""
    n = 0
    for w, monday in enumerate(weeks):
        day = monday + timedelta(days=1)
        received = datetime.combine(day, time(9), tzinfo=timezone.utc)
        for device in DEVICES:
            for category in categories_of(device, w):
                n += 1
                study = f"{STUDY_ROOT}.{n}"
                score = dataclasses.replace(exam_score(study, category), model_sha256=PACKAGED_SHA)
                triage = ExamForTriage(
                    study, float(score.score or 0), category, 30, False, received
                )
                store.exams.save_score(
                    score,
                    decide(policy, triage),
                    received,
                    identifiers=StudyIdentifiers(study_date=day),
                    acquisition=device,
                )


def monitor_config(path: Path, **values: object) -> Path:
    """A monitor settings file with the default rules, each asking for :data:`MIN_EXAMS`
    exams a week, and ``values``."""
    rules = [rule.model_dump(mode="json") | {"min_exams": MIN_EXAMS} for rule in DEFAULT_RULES]
    path.write_text(yaml.safe_dump({"alerts": rules, **values}))
    return path


__all__ = [
    "DEVICES",
    "DRIFTING",
    "ELSEWHERE",
    "PACKAGED_SHA",
    "SITE",
    "STEADY",
    "device_name",
    "monitor_config",
    "mondays_before",
    "seed_drift",
]
