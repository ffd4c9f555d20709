"""Which series, instance and version a mammotriage report is: its UIDs and its predecessor.

Every UID here is a hash (pydicom ``generate_uid`` with entropy sources, PS3.5 Section 9 and
B.2) of the facts it stands for, never a random one, so that writing the same report again
after a crash gives the PACS the same instance, which it replaces or ignores:

- the **series** of the SR is one per study (:func:`report_series_uid`), whatever the model
  or the result, so every version of an exam's report lives in one series and the series of
  a predecessor is known from the study alone;
- the **SOP instance** is a hash of the study, the model, the sorted source images and the
  whole content (:func:`report_fingerprint`), and for a later version also of its
  predecessor's SOP Instance UID and its version number: the same result sent twice is one
  instance, a changed result (a late view, a new model) is a new one;
- the **device** is one per model file (:func:`device_uid`).

A rescore of an exam (the same study processed again, e.g. a late view arrived) is a new SR
document that supersedes the one sent before. DICOM has no "replaces" attribute, and an SR
is not updated in place: changed content is a new SOP instance. What it has is the
Predecessor Documents Sequence (0040,A360) of the SR Document General Module (PS3.3
C.17.2), a Hierarchical SOP Instance Reference to the SR documents whose content this one
includes with or without modification: here the earlier result for the same exam, restated
as the rescore found it. A PACS or viewer tells the versions apart by:

- the same Series Instance UID (and Series Number) for every version;
- the later version's Predecessor Documents Sequence naming the earlier one (study, series,
  SOP class, SOP instance);
- a higher Instance Number (the version: 1, 2, 3, ...);
- a later Content Date/Time and Instance Creation Date/Time (when that analysis ran).

Each version states its own model (Manufacturer's Model Name, Software Versions, the
algorithm's Contributing Equipment item): when the model or mammotriage changed between two
versions these series-level General Equipment attributes differ within the series, which is
the price of keeping every version of the report in one place. The series has no Series
Date/Time for the same reason.

The Completion Flag (COMPLETE, or PARTIAL for an exam without a standard view), the
Verification Flag (UNVERIFIED) and the Preliminary Flag (PRELIMINARY) keep their meaning in
every version: a rescore is not a verification. The earlier version stays in the PACS;
withdrawing it would take a Key Object Selection rejection note (IHE IOCM), which
mammotriage does not send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import ComprehensiveSRStorage, generate_uid

from mammotriage.dicom.report_content import AlgorithmIdentity, ReportContent

__all__ = [
    "PriorReport",
    "derived_uid",
    "device_uid",
    "report_fingerprint",
    "report_instance_uid",
    "report_series_uid",
    "report_version",
]


# PS3.5 9.1: components of digits without leading zeros, separated by dots, 64 characters.
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_UID_MAX = 64


def _check_uid(argument: str, value: str) -> None:
    if not isinstance(value, str) or len(value) > _UID_MAX or not _UID.fullmatch(value):
        raise ValueError(f"{argument} must be a valid DICOM UID, got {value!r}")


@dataclass(frozen=True)
class PriorReport:
    """The SR that a new report supersedes: what its Predecessor Documents Sequence names.

    Parameters
    ----------
    sop_instance_uid:
        SOP Instance UID of the earlier SR (the worklist keeps it per exam).
    series_instance_uid:
        Its Series Instance UID; :meth:`of_study` computes it for a report mammotriage wrote.
    sop_class_uid:
        Its SOP Class UID, Comprehensive SR Storage unless given.
    """

    sop_instance_uid: str
    series_instance_uid: str
    sop_class_uid: str = ComprehensiveSRStorage

    def __post_init__(self) -> None:
        _check_uid("sop_instance_uid", self.sop_instance_uid)
        _check_uid("series_instance_uid", self.series_instance_uid)
        _check_uid("sop_class_uid", self.sop_class_uid)

    @classmethod
    def of_study(cls, study_instance_uid: str, sop_instance_uid: str) -> PriorReport:
        """The earlier mammotriage SR of a study, known by its SOP Instance UID alone.

        Its series is :func:`report_series_uid` of the study: every report mammotriage
        writes for a study is in that series (reports written before the series became one
        per study are not, and their reference names the series they would have had).
        """
        return cls(sop_instance_uid, report_series_uid(study_instance_uid))


def report_series_uid(study_instance_uid: str) -> str:
    """The Series Instance UID of every mammotriage SR of the study: one series per study."""
    _check_uid("study_instance_uid", study_instance_uid)
    return str(generate_uid(entropy_srcs=["mammotriage-sr-series-of-study", study_instance_uid]))


def report_version(predecessor: PriorReport | None, version: int | None) -> int:
    """The report's version (its Instance Number): 1 for a first report, at least 2 for one
    that supersedes a predecessor; ``None`` means 1, or 2 when there is a predecessor.

    Raises
    ------
    ValueError
        If ``version`` is not a positive integer, is 1 with a predecessor, or above 1
        without one.
    """
    if version is None:
        return 1 if predecessor is None else 2
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}")
    if predecessor is None and version != 1:
        raise ValueError(f"version {version} needs the predecessor it supersedes, got none")
    if predecessor is not None and version < 2:
        raise ValueError(f"a report with a predecessor must have version >= 2, got {version}")
    return version


def report_fingerprint(
    content: ReportContent, source_images: Sequence[Dataset], algorithm: AlgorithmIdentity
) -> str:
    """The facts a report states, as canonical JSON: study, source images (sorted), model,
    and the whole content. Every content-derived UID of the SR and the GSPS hashes it."""
    facts = {
        "study": sorted({str(image.StudyInstanceUID) for image in source_images}),
        "sources": sorted(str(image.SOPInstanceUID) for image in source_images),
        "algorithm": [algorithm.name, algorithm.version, algorithm.sha256],
        "exam_score": content.exam_score,
        "category": content.category,
        "breasts": dict(content.breasts),
        "findings": [
            [f.sop_instance_uid, f.laterality, f.view, list(f.box), f.score]
            for f in content.findings
        ],
        "reading": content.reading,
        "partial": content.partial,
        **({"demonstration": True} if content.demonstration else {}),
    }
    return json.dumps(facts, sort_keys=True, separators=(",", ":"))


def derived_uid(fingerprint: str, purpose: str) -> str:
    """A UID for one ``purpose`` (the instance, a tracking id) of the report ``fingerprint``."""
    return str(generate_uid(entropy_srcs=[f"mammotriage-sr-{purpose}", fingerprint]))


def report_instance_uid(fingerprint: str, predecessor: PriorReport | None, version: int) -> str:
    """The SOP Instance UID of the report: a hash of its facts, and for a later version also
    of its predecessor and its version, so that resending the same rescore is one instance.

    A first version keeps the UID that reports had before versions existed.
    """
    if predecessor is None:
        return derived_uid(fingerprint, "instance")
    return derived_uid(fingerprint, f"instance-v{version}-after-{predecessor.sop_instance_uid}")


def device_uid(algorithm: AlgorithmIdentity) -> str:
    """The model's Device UID: one per model sha256, the same in every report it writes.

    It is the Device Observer UID of the report's observer context (TID 1004) and the Device
    UID of the algorithm's Contributing Equipment item, so a new model file (a new sha256) is
    a new device to the PACS, and the same model is the same device in every report.
    """
    return str(generate_uid(entropy_srcs=["mammotriage-device", algorithm.sha256]))
