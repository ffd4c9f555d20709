"""The worker's GSPS output (``gsps: {enabled: true}``): off by default; on, every exam with
findings gets one next to its SR, through the same sender, with the SR's regions as boxes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from mammotriage.dicom.gsps import FINDINGS_LAYER
from worker_helpers import build, copy_exams, folder_settings, run_once

GSPS_STORAGE = "1.2.840.10008.5.1.4.1.1.11.1"


def _box(points: list[float]) -> tuple[float, ...]:
    xy = np.asarray(points, dtype=float).reshape(-1, 2)
    return (*xy.min(axis=0), *xy.max(axis=0))


def _sr_regions(item: Dataset) -> list[tuple[str, tuple[float, ...]]]:
    """(image SOP Instance UID, box) of every SCOORD in the SR's content tree."""
    found = []
    for child in item.get("ContentSequence", []):
        if child.get("ValueType") == "SCOORD":
            (image,) = child.ContentSequence
            uid = str(image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
            found.append((uid, _box(child.GraphicData)))
        found.extend(_sr_regions(child))
    return found


def _gsps_boxes(ds: Dataset) -> list[tuple[str, tuple[float, ...]]]:
    return [
        (str(item.ReferencedImageSequence[0].ReferencedSOPInstanceUID), _box(graphic.GraphicData))
        for item in ds.GraphicAnnotationSequence
        if item.GraphicLayer == FINDINGS_LAYER
        for graphic in item.GraphicObjectSequence
    ]


def test_gsps_is_off_by_default(tmp_path):
    # A worker on the defaults writes the SR alone into each exam's folder, findings or
    # not: test_worker_loop.py's first test finds exactly one file there per exam.
    settings = folder_settings(tmp_path)
    assert settings.outputs.sr.enabled is True
    assert settings.outputs.gsps.enabled is False
    assert settings.outputs.sc.enabled is False
    assert settings.outputs.hl7.enabled is False


def test_enabled_gsps_goes_with_the_sr_of_each_exam_with_findings(tmp_path, tiny_synthetic):
    settings = folder_settings(tmp_path, outputs={"gsps": {"enabled": True}})
    copy_exams(tiny_synthetic, settings.source.path, 12)
    worker = build(settings)
    summary = run_once(worker)
    assert summary.failed == 0
    with_findings = 0
    for exam in worker.store.exams.all():
        assert exam.report_location is not None
        paths = sorted(Path(exam.report_location).glob("*.dcm"))
        files = [pydicom.dcmread(p) for p in paths]
        (sr,) = [ds for ds in files if ds.Modality == "SR"]
        assert sr.SOPInstanceUID == exam.report_sop_instance_uid
        regions = _sr_regions(sr)
        presentation_states = [ds for ds in files if ds.Modality == "PR"]
        if not regions:
            assert presentation_states == []
            continue
        with_findings += 1
        (gsps,) = presentation_states
        assert gsps.SOPClassUID == GSPS_STORAGE
        assert gsps.StudyInstanceUID == sr.StudyInstanceUID == exam.study_instance_uid
        assert sorted(_gsps_boxes(gsps)) == sorted(regions)
        # On the synthetic exams' own headers too, dciodvfy finds no error.
        (path,) = [p for p, ds in zip(paths, files, strict=True) if ds is gsps]
        checked = subprocess.run(
            ["dciodvfy", "-new", str(path)], capture_output=True, text=True, timeout=60
        )
        output = checked.stdout + checked.stderr
        assert not [line for line in output.splitlines() if re.match(r"^\s*Error", line)], output
    assert with_findings > 0, "no exam had a finding: the test checked nothing"
