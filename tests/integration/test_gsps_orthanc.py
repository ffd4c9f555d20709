"""The GSPS through a real Orthanc: stored by the worker's Orthanc sender (``POST /instances``),
read back from Orthanc with its boxes on the findings of the images Orthanc holds, and never
fetched as an image of the study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from fixtures_orthanc import VIEWS, OrthancServer, wait_stable, write_exam
from mammotriage.dicom.gsps import CATEGORY_LAYER, FINDINGS_LAYER, build_presentation_state
from mammotriage.dicom.report import (
    AlgorithmIdentity,
    ReportContent,
    ReportFinding,
    write_report,
)
from mammotriage.worker.sources.orthanc import OrthancSource

pytestmark = pytest.mark.integration

ALGORITHM = AlgorithmIdentity(name="mammonet-b0", version="0.1.0", sha256="ab" * 32)


def _instance(orthanc: OrthancServer, sop_instance_uid: str, folder: Path) -> Dataset:
    """The instance Orthanc holds under this SOP Instance UID, read from its stored file."""
    found = orthanc.http.post("/tools/lookup", content=sop_instance_uid).json()
    (instance,) = [item["ID"] for item in found if item["Type"] == "Instance"]
    reply = orthanc.http.get(f"/instances/{instance}/file")
    reply.raise_for_status()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{instance}.dcm"
    path.write_bytes(reply.content)
    return pydicom.dcmread(path)


def test_gsps_stored_in_orthanc_draws_each_finding_on_its_image_and_is_never_fetched(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    files = write_exam(tmp_path / "exam", study_uid, VIEWS)
    orthanc.upload_all(files)
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in files]
    by_view = {(h.ImageLaterality, h.ViewPosition): h for h in headers}
    r_cc, l_mlo = by_view[("R", "CC")], by_view[("L", "MLO")]
    findings = (
        ReportFinding(r_cc.SOPInstanceUID, "R", "CC", (5.0, 10.0, 25.5, 30.0), 61),
        ReportFinding(l_mlo.SOPInstanceUID, "L", "MLO", (12.0, 40.0, 40.0, 80.75), 35),
        ReportFinding(l_mlo.SOPInstanceUID, "L", "MLO", (0.0, 0.0, 8.0, 8.0), 12),
    )
    content = ReportContent(exam_score=61.0, category=8, findings=findings, demonstration=True)
    gsps = build_presentation_state(content, headers, ALGORITHM)
    assert gsps is not None
    path = write_report(gsps, tmp_path / "out" / f"{gsps.SOPInstanceUID}.dcm")

    with OrthancSource(orthanc.url, username=orthanc.username, password=orthanc.password) as src:
        where = src.store_reports(study_uid, [path])
        assert orthanc.url in where
        assert orthanc.count_instances(study_uid) == 5

        stored = _instance(orthanc, str(gsps.SOPInstanceUID), tmp_path / "back")
        assert stored.StudyInstanceUID == study_uid
        assert stored.Modality == "PR"
        category = {
            text.UnformattedTextValue
            for item in stored.GraphicAnnotationSequence
            if item.GraphicLayer == CATEGORY_LAYER
            for text in item.TextObjectSequence
        }
        assert category == {"AI category 8 of 10 - demonstration model, not for clinical use"}
        drawn: dict[str, list[tuple[float, float, float, float]]] = {}
        for item in stored.GraphicAnnotationSequence:
            if item.GraphicLayer != FINDINGS_LAYER:
                continue
            (reference,) = item.ReferencedImageSequence
            image = _instance(orthanc, str(reference.ReferencedSOPInstanceUID), tmp_path / "back")
            assert image.StudyInstanceUID == study_uid
            assert reference.ReferencedSOPClassUID == image.SOPClassUID
            for graphic in item.GraphicObjectSequence:
                assert graphic.GraphicAnnotationUnits == "PIXEL"
                points = np.asarray(graphic.GraphicData, dtype=float).reshape(-1, 2)
                (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
                # On the image's own pixel matrix: 0..Columns across, 0..Rows down.
                assert 0 <= x0 < x1 <= image.Columns and 0 <= y0 < y1 <= image.Rows
                drawn.setdefault(str(image.SOPInstanceUID), []).append((x0, y0, x1, y1))
        expected: dict[str, list[tuple[float, float, float, float]]] = {}
        for finding in findings:
            expected.setdefault(finding.sop_instance_uid, []).append(finding.box)
        assert drawn == expected

        # Ours (Manufacturer mammotriage): the source fetches the four views and nothing else.
        wait_stable(orthanc, study_uid)
        fetched = src.fetch(study_uid, tmp_path / "fetched")
        assert sorted(pydicom.dcmread(p).SOPInstanceUID for p in fetched) == sorted(
            h.SOPInstanceUID for h in headers
        )
