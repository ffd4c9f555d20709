"""From a scored exam to the DICOM SR sent back to the PACS (:mod:`mammotriage.dicom.report`).

A rescore of an exam (the same study processed again, e.g. after a late view) writes a new SR
that supersedes the one sent before: the caller passes that SR's SOP Instance UID (the
worklist keeps it per exam) and the new version number, and the new SR names its predecessor
in the Predecessor Documents Sequence, in the same series, with the version as its Instance
Number (:mod:`mammotriage.dicom.report_identity` says how a PACS tells the versions apart).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from mammotriage import __version__
from mammotriage.dicom.capture import build_secondary_captures
from mammotriage.dicom.gsps import build_presentation_state
from mammotriage.dicom.report import build_measurement_report, write_report
from mammotriage.dicom.report_content import (
    BREAST_SIDES,
    AlgorithmIdentity,
    ReportContent,
    ReportFinding,
)
from mammotriage.dicom.report_identity import PriorReport, report_version
from mammotriage.errors import DicomReadError, SourceError
from mammotriage.infer.scores import ExamScore
from mammotriage.triage import ReadingMode, TriageDecision

log = logging.getLogger(__name__)

_READING = {
    ReadingMode.SINGLE: "single reading",
    ReadingMode.DOUBLE: "double reading",
    ReadingMode.RULE_OUT: "no human reader",
}


@dataclass(frozen=True)
class WrittenReport:
    path: Path
    sop_instance_uid: str
    #: The exam's GSPS, when enabled and the exam has findings.
    presentation_state: Path | None = None
    #: The SR's version (its Instance Number): 1, or the predecessor's plus one.
    version: int = 1
    #: The burnt-in Secondary Captures, one per image with findings, when enabled.
    captures: tuple[Path, ...] = ()
    #: Outputs that were asked for but could not be built, with the reason.
    not_built: dict[str, str] = field(default_factory=dict)

    @property
    def outputs(self) -> dict[str, list[Path]]:
        """The files of each output (``sr``, ``gsps``, ``sc``), in sending order; each is
        sent on its own, so that one failing leaves the others sent."""
        outputs = {"sr": [self.path]}
        if self.presentation_state is not None:
            outputs["gsps"] = [self.presentation_state]
        if self.captures:
            outputs["sc"] = list(self.captures)
        return outputs

    @property
    def paths(self) -> list[Path]:
        """Every file to send back: the SR, the GSPS, the Secondary Captures."""
        return [path for paths in self.outputs.values() for path in paths]


class ReportWriter:
    """Writes the TID 1500 measurement report of a scored exam into a folder.

    Parameters
    ----------
    model_name
        The model's name (from its sidecar), reported as the algorithm name.
    institution_name
        Optional, written into the SR's equipment module.
    demonstration
        The model is a demonstration model (trained on synthetic data): every SR says
        "demonstration model, not for clinical use".
    presentation_state
        Also write a GSPS (:mod:`mammotriage.dicom.gsps`) for each exam with findings.
    secondary_capture
        Also write a Secondary Capture with the findings burnt in
        (:mod:`mammotriage.dicom.capture`) for each image with findings.
    """

    def __init__(
        self,
        model_name: str,
        *,
        institution_name: str | None = None,
        demonstration: bool = False,
        presentation_state: bool = False,
        secondary_capture: bool = False,
    ) -> None:
        self.model_name = model_name
        self.institution_name = institution_name
        self.demonstration = demonstration
        self.presentation_state = presentation_state
        self.secondary_capture = secondary_capture

    def write(
        self,
        exam_score: ExamScore,
        decision: TriageDecision,
        out_dir: Path,
        *,
        predecessor_uid: str | None = None,
        version: int | None = None,
    ) -> WrittenReport:
        """The SR of ``exam_score`` (which must be scored), written under ``out_dir``.

        Its evidence is the images that were scored; findings point at their images.

        Parameters
        ----------
        exam_score, decision
            The scored exam and its triage decision.
        out_dir
            Where the SR (and the GSPS) go, named by their SOP Instance UIDs.
        predecessor_uid
            SOP Instance UID of the SR sent for an earlier score of this exam, which this one
            supersedes (a rescore); ``None`` for the exam's first report. Its series is the
            study's report series (:meth:`PriorReport.of_study`).
        version
            The SR's Instance Number: the predecessor's plus one. ``None`` means 1, or 2 with
            a predecessor. The GSPS gets the same number.

        The same exam result with the same predecessor and version gives the same SOP
        Instance UIDs, so a report re-sent after a crash is one copy in the PACS.

        Raises
        ------
        SourceError
            If an image the exam was scored from can no longer be read (it was removed).
        ValueError
            If the exam is not scored, ``predecessor_uid`` is not a valid UID, or ``version``
            does not fit it (below 2 with a predecessor, above 1 without).
        """
        if exam_score.score is None or exam_score.category is None:
            raise ValueError("only a scored exam has a report")
        scored = [im for im in exam_score.images if im.probability is not None and im.path]
        headers = []
        for image in scored:
            assert image.path is not None  # filtered above
            try:
                headers.append(dcmread(image.path, stop_before_pixels=True))
            except (OSError, InvalidDicomError) as exc:
                raise SourceError(f"cannot re-read a scored image for the report: {exc}") from exc
        sources = {h.SOPInstanceUID for h in headers}
        findings = tuple(
            ReportFinding(
                sop_instance_uid=str(f.sop_instance_uid),
                laterality=f.laterality.value,
                view=f.view.value,
                box=tuple(float(v) for v in f.box_original),  # type: ignore[arg-type]
                score=int(f.score),
            )
            for f in exam_score.findings
            if f.sop_instance_uid in sources
        )
        content = ReportContent(
            exam_score=float(exam_score.score),
            category=int(exam_score.category),
            breasts={lat: v for lat, v in exam_score.breasts.items() if lat in BREAST_SIDES},
            findings=findings,
            reading=_READING.get(decision.mode),
            partial=exam_score.partial,
            demonstration=self.demonstration,
        )
        algorithm = AlgorithmIdentity(self.model_name, __version__, exam_score.model_sha256)
        predecessor = (
            None
            if predecessor_uid is None
            else PriorReport.of_study(str(headers[0].StudyInstanceUID), predecessor_uid)
        )
        number = report_version(predecessor, version)
        report = build_measurement_report(
            content,
            headers,
            algorithm,
            institution_name=self.institution_name,
            predecessor=predecessor,
            version=number,
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        path = write_report(report, out_dir / f"{report.SOPInstanceUID}.dcm")
        gsps_path = None
        not_built: dict[str, str] = {}
        if self.presentation_state:
            try:
                gsps = build_presentation_state(
                    content,
                    headers,
                    algorithm,
                    institution_name=self.institution_name,
                    version=number,
                )
            except ValueError as exc:  # images it cannot show (mixed MONOCHROME1/2): SR only
                log.warning(
                    "presentation state not built: %s", exc, extra={"event": "gsps-skipped"}
                )
                not_built["gsps"] = f"not built: {exc}"
                gsps = None
            if gsps is not None:
                gsps_path = write_report(gsps, out_dir / f"{gsps.SOPInstanceUID}.dcm")
        captures: list[Path] = []
        if self.secondary_capture and content.findings:
            files = {h.SOPInstanceUID: im.path for h, im in zip(headers, scored, strict=True)}
            try:
                for capture in build_secondary_captures(
                    content,
                    headers,
                    files,  # type: ignore[arg-type]
                    algorithm,
                    institution_name=self.institution_name,
                ):
                    captures.append(
                        write_report(capture, out_dir / f"{capture.SOPInstanceUID}.dcm")
                    )
            except (ValueError, DicomReadError) as exc:  # a view gone or undecodable
                log.warning("secondary captures not built: %s", exc, extra={"event": "sc-skipped"})
                not_built["sc"] = f"not built: {exc}"
                captures = []
        return WrittenReport(
            path, str(report.SOPInstanceUID), gsps_path, number, tuple(captures), not_built
        )


__all__ = ["ReportWriter", "WrittenReport"]
