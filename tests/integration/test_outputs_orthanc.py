"""The worker's outputs end to end with real parts: a study in a real Orthanc is scored, its SR
and GSPS land in its study in Orthanc and its ORU^R01 at a real MLLP listener
(tests/mllp_peer.py, which validates it against v2.5.1); a late view makes the worker score
the study again, and it answers with an SR that supersedes the first (same series, Instance
Number 2, Predecessor Documents Sequence) and a corrected (``C``) result."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from fixtures_orthanc import OrthancServer, wait_stable, worker_source
from mammotriage.worker.sources.orthanc import REPORT_MANUFACTURER
from mllp_peer import er7_field, start_peer
from sr_validators import dciodvfy_errors
from worker_helpers import build, folder_settings, run_once

pytestmark = pytest.mark.integration

#: The synthetic exam sent: the shipped model finds lesions in it with three views and with
#: four, so that each scoring draws a GSPS.
EXAM = "00004"
GSPS_STORAGE = "1.2.840.10008.5.1.4.1.1.11.1"


def _ours(orthanc: OrthancServer, study_uid: str, folder: Path) -> dict[Path, Dataset]:
    """Every SR and presentation state Orthanc holds in the study, downloaded as it gives
    them out (``GET /instances/{id}/file``) and read."""
    found = orthanc.http.post("/tools/lookup", content=study_uid).json()
    (study,) = [item["ID"] for item in found if item["Type"] == "Study"]
    folder.mkdir(parents=True, exist_ok=True)
    held: dict[Path, Dataset] = {}
    for series in orthanc.http.get(f"/studies/{study}/series").json():
        if series["MainDicomTags"].get("Modality") not in ("SR", "PR"):
            continue
        for instance in series["Instances"]:
            reply = orthanc.http.get(f"/instances/{instance}/file")
            reply.raise_for_status()
            path = folder / f"{instance}.dcm"
            path.write_bytes(reply.content)
            held[path] = pydicom.dcmread(path)
    return held


def _kind(held: dict[Path, Dataset], modality: str) -> dict[Path, Dataset]:
    return {path: ds for path, ds in held.items() if ds.Modality == modality}


def _predecessors(report: Dataset) -> set[str]:
    """The SOP Instance UIDs its Predecessor Documents Sequence names."""
    return {
        str(item.ReferencedSOPInstanceUID)
        for study in report.get("PredecessorDocumentsSequence", [])
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }


def test_a_study_gets_its_sr_gsps_and_result_and_a_late_view_a_superseding_sr_and_correction(
    tmp_path: Path, orthanc: OrthancServer, tiny_synthetic: Path
) -> None:
    *first_views, late_view = sorted((tiny_synthetic / EXAM).glob("*.dcm"))
    study_uid = str(pydicom.dcmread(late_view, stop_before_pixels=True).StudyInstanceUID)
    peer = start_peer(tmp_path / "received.jsonl")
    hl7 = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": peer.port,
        "connect_timeout_seconds": 2,
        "read_timeout_seconds": 60,  # the peer validates with hl7apy: slow on a loaded machine
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.2,
        "timezone": "Europe/Copenhagen",
    }
    settings = folder_settings(
        tmp_path,
        source=worker_source(orthanc),
        outputs={"sr": {"enabled": True}, "gsps": {"enabled": True}, "hl7": hl7},
    )
    worker = build(settings)
    try:
        # Studies other tests of this module leave in the shared Orthanc are not ours.
        worker.store.jobs.save_cursor(worker.source.name, orthanc.last_change())
        orthanc.upload_all(first_views)
        wait_stable(orthanc, study_uid)

        summary = run_once(worker)

        assert (summary.scored, summary.failed, summary.hl7_waiting) == (1, 0, 0)
        (exam,) = worker.store.exams.all()
        held = _ours(orthanc, study_uid, tmp_path / "first")
        ((_, first),) = _kind(held, "SR").items()
        assert first.Manufacturer == REPORT_MANUFACTURER
        assert first.StudyInstanceUID == study_uid
        assert first.SOPInstanceUID == exam.report_sop_instance_uid
        assert first.InstanceNumber == 1 and _predecessors(first) == set()
        ((_, gsps),) = _kind(held, "PR").items()
        assert gsps.SOPClassUID == GSPS_STORAGE
        assert gsps.StudyInstanceUID == study_uid
        assert gsps.Manufacturer == REPORT_MANUFACTURER
        (result,) = peer.received()
        assert result["valid"] and result["answer"] == "AA", result
        assert er7_field(str(result["message"]), "MSH", 9) == "ORU^R01^ORU_R01"
        assert er7_field(str(result["message"]), "OBR", 25) == "F"

        # The late view arrives: Orthanc calls the study stable again, the worker rescores it.
        orthanc.upload(late_view)
        wait_stable(orthanc, study_uid)

        summary = run_once(worker)

        assert (summary.scored, summary.failed, summary.hl7_waiting) == (1, 0, 0)
        (rescored,) = worker.store.exams.all()
        assert rescored.public_id == exam.public_id and not rescored.partial
        held = _ours(orthanc, study_uid, tmp_path / "second")
        reports = sorted(_kind(held, "SR").items(), key=lambda item: int(item[1].InstanceNumber))
        assert [int(ds.InstanceNumber) for _, ds in reports] == [1, 2]
        (_, earlier), (newer_path, newer) = reports
        assert earlier.SOPInstanceUID == first.SOPInstanceUID
        assert newer.SOPInstanceUID == rescored.report_sop_instance_uid != first.SOPInstanceUID
        assert newer.Manufacturer == REPORT_MANUFACTURER
        assert newer.SeriesInstanceUID == earlier.SeriesInstanceUID
        assert _predecessors(newer) == {str(first.SOPInstanceUID)}
        presentation_states = _kind(held, "PR")
        assert presentation_states, "no GSPS in Orthanc after the rescore"
        assert {str(ds.SOPClassUID) for ds in presentation_states.values()} == {GSPS_STORAGE}
        first_result, correction = peer.received()
        assert first_result["control_id"] == result["control_id"]
        assert correction["valid"] and correction["answer"] == "AA", correction
        assert correction["control_id"] != result["control_id"]
        assert er7_field(str(correction["message"]), "OBR", 25) == "C"
    finally:
        peer.stop()
        worker.source.close()
        worker.store.close()

    # Both as Orthanc gives them out: the superseding SR and every GSPS conform.
    for path in (newer_path, *presentation_states):
        assert dciodvfy_errors(path) == [], path.name
